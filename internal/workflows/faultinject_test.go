package workflows

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
)

// Fault-injection: a Temporal activity interceptor that makes the first
// attempt of chosen activity types fail in one of the ways a real worker
// fails, so that the retry Temporal makes has to cope with whatever the
// failed attempt left behind.

// fault is how an attempt fails.
type fault string

const (
	// failBefore: the attempt fails before the activity runs (the worker
	// could not start it, a dependency was down).
	failBefore fault = "fail-before"
	// loseCompletion: the activity runs to the end and its result is lost
	// (the worker died before reporting, a network partition).
	loseCompletion fault = "lose-completion"
	// staleHeartbeat: the activity runs to the end, only its first
	// heartbeat reached the server (heartbeats are throttled) and its result
	// is lost: the retry resumes from an old cursor over work already done.
	staleHeartbeat fault = "stale-heartbeat"
)

var faults = []fault{failBefore, loseCompletion, staleHeartbeat}

// faultInjector fails the first attempt of every execution of the
// activity types it targets.
type faultInjector struct {
	interceptor.WorkerInterceptorBase
	target string // activity type name; everyActivity: all; "" injects nothing
	mode   fault
	// between runs after a faulted attempt, before the retry (tests change
	// the world there, as time passing would).
	between func(activityType string)

	mu       sync.Mutex
	injected map[string]int // activity type → attempts faulted
	seen     map[string]int // activity type → attempts run
}

// everyActivity targets every activity type (local activities included).
const everyActivity = "*"

func newFaultInjector(target string, mode fault) *faultInjector {
	return &faultInjector{target: target, mode: mode, injected: map[string]int{}, seen: map[string]int{}}
}

func (f *faultInjector) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &faultyActivity{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, f: f}
}

// counts returns how many attempts of each type ran and were faulted.
func (f *faultInjector) counts() (seen, injected map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	seen, injected = map[string]int{}, map[string]int{}
	for k, v := range f.seen {
		seen[k] = v
	}
	for k, v := range f.injected {
		injected[k] = v
	}
	return seen, injected
}

type faultyActivity struct {
	interceptor.ActivityInboundInterceptorBase
	f         *faultInjector
	heartbeat *droppingHeartbeats
}

func (a *faultyActivity) Init(outbound interceptor.ActivityOutboundInterceptor) error {
	a.heartbeat = &droppingHeartbeats{ActivityOutboundInterceptorBase: interceptor.ActivityOutboundInterceptorBase{Next: outbound}}
	return a.Next.Init(a.heartbeat)
}

// errInjected is the error of a faulted attempt: retryable, like the
// timeouts and worker losses it stands for.
func errInjected(mode fault, typ string) error {
	return temporal.NewApplicationError(fmt.Sprintf("injected fault: %s of %s", mode, typ), "InjectedFault")
}

func (a *faultyActivity) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	info := activity.GetInfo(ctx)
	typ := info.ActivityType.Name
	f := a.f
	f.mu.Lock()
	f.seen[typ]++
	hit := (typ == f.target || f.target == everyActivity) && info.Attempt == 1
	if hit {
		f.injected[typ]++
	}
	f.mu.Unlock()
	if !hit {
		return a.Next.ExecuteActivity(ctx, in)
	}
	defer func() {
		if f.between != nil {
			f.between(typ)
		}
	}()
	switch f.mode {
	case failBefore:
		return nil, errInjected(f.mode, typ)
	case staleHeartbeat:
		a.heartbeat.keepFirstOnly()
	}
	_, err := a.Next.ExecuteActivity(ctx, in)
	if err != nil && !errors.Is(err, context.Canceled) {
		return nil, err // it failed on its own: that is a retry too
	}
	return nil, errInjected(f.mode, typ)
}

// droppingHeartbeats passes heartbeats on, or after keepFirstOnly only the
// first of an attempt.
type droppingHeartbeats struct {
	interceptor.ActivityOutboundInterceptorBase
	mu       sync.Mutex
	dropping bool
	sent     int
}

func (d *droppingHeartbeats) keepFirstOnly() {
	d.mu.Lock()
	d.dropping = true
	d.mu.Unlock()
}

func (d *droppingHeartbeats) RecordHeartbeat(ctx context.Context, details ...any) {
	d.mu.Lock()
	d.sent++
	drop := d.dropping && d.sent > 1
	d.mu.Unlock()
	if !drop {
		d.Next.RecordHeartbeat(ctx, details...)
	}
}
