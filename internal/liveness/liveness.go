package liveness

import (
	"context"
	"sync"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
)

// Interceptor returns a worker interceptor under which each activity
// heartbeats every interval while it runs. A liveness heartbeat re-sends
// the details the activity last recorded — before it records any, the
// details its previous attempt left — so a resumable activity's cursor is
// never lost to a heartbeat that only says "alive".
//
// The worker's MaxHeartbeatThrottleInterval should not exceed interval, or
// the SDK holds the heartbeats back.
func Interceptor(interval time.Duration) interceptor.WorkerInterceptor {
	return &workerInterceptor{interval: interval}
}

type workerInterceptor struct {
	interceptor.WorkerInterceptorBase
	interval time.Duration
}

// InterceptActivity is called once per activity execution.
func (w *workerInterceptor) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &inbound{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, interval: w.interval}
}

type inbound struct {
	interceptor.ActivityInboundInterceptorBase
	interval time.Duration
	out      *outbound
}

func (i *inbound) Init(out interceptor.ActivityOutboundInterceptor) error {
	i.out = &outbound{ActivityOutboundInterceptorBase: interceptor.ActivityOutboundInterceptorBase{Next: out}}
	return i.Next.Init(i.out)
}

func (i *inbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	i.out.carryPrevious(ctx)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(i.interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				i.out.resend(ctx)
			}
		}
	}()
	defer func() {
		close(done)
		wg.Wait()
	}()
	return i.Next.ExecuteActivity(ctx, in)
}

// outbound remembers the details of the activity's last heartbeat.
type outbound struct {
	interceptor.ActivityOutboundInterceptorBase
	mu   sync.Mutex
	last []any
}

// maxDetails bounds how many values of a previous attempt's details are
// carried (Huabu's activities record one).
const maxDetails = 4

// carryPrevious takes the previous attempt's details as they are, so a
// liveness heartbeat before the activity's own first one keeps them.
func (o *outbound) carryPrevious(ctx context.Context) {
	if !o.Next.HasHeartbeatDetails(ctx) {
		return
	}
	raw := make([]converter.RawValue, maxDetails)
	ptrs := make([]any, maxDetails)
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	if err := o.Next.GetHeartbeatDetails(ctx, ptrs...); err != nil {
		return // heartbeats then say only "alive", as they would without us
	}
	var last []any
	for _, r := range raw {
		if r.Payload() == nil {
			break
		}
		last = append(last, r)
	}
	o.mu.Lock()
	o.last = last
	o.mu.Unlock()
}

// RecordHeartbeat is the activity's own heartbeat. The lock keeps a
// liveness heartbeat from overtaking it with older details.
func (o *outbound) RecordHeartbeat(ctx context.Context, details ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.last = details
	o.Next.RecordHeartbeat(ctx, details...)
}

func (o *outbound) resend(ctx context.Context) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.Next.RecordHeartbeat(ctx, o.last...)
}
