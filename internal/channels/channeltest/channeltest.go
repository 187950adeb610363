package channeltest

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/channels/fakes"
)

// Deps are channel dependencies for tests: a 10 s HTTP client, no logs.
func Deps() channels.Deps {
	return channels.Deps{HTTP: &http.Client{Timeout: 10 * time.Second}, Logger: slog.New(slog.DiscardHandler), Now: time.Now}
}

// NewChannel builds a registered channel (name, provider) from cfg.
func NewChannel(t testing.TB, name, provider string, cfg map[string]any, deps ...channels.Deps) channels.Channel {
	t.Helper()
	_, factory, ok := channels.Lookup(name, provider)
	require.True(t, ok, "%s/%s is not registered", name, provider)
	d := Deps()
	if len(deps) > 0 {
		d = deps[0]
	}
	ch, err := factory(cfg, d)
	require.NoError(t, err)
	return ch
}

// Deliveries are one delivery per address, each with the text "hello".
func Deliveries(addrs ...string) []channels.Delivery {
	out := make([]channels.Delivery, len(addrs))
	for i, a := range addrs {
		out[i] = channels.Delivery{Recipient: channels.Recipient{UserID: "u-" + a, Address: a}, Message: &canvases.Message{Text: "hello"}}
	}
	return out
}

// Batch is a batch of ds as the engine hands it to a channel.
func Batch(ds []channels.Delivery) channels.Batch {
	return channels.Batch{Key: "run1/step1/0", CanvasID: "winback", RunID: "run1", StepID: "step1", Deliveries: ds}
}

// CtxTimeout is a context cancelled after d or when the test ends.
func CtxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// ClassOf returns the class and reason of a Send's error.
func ClassOf(t testing.TB, err error) (channels.Class, string) {
	t.Helper()
	require.Error(t, err)
	e := channels.Classify(err)
	return e.Class, e.Reason
}

// Verdict returns the class and reason shared by every delivery of a send,
// whether it came back as the batch's error or as per-delivery outcomes.
func Verdict(t testing.TB, outs []channels.Outcome, err error) (channels.Class, string) {
	t.Helper()
	if err != nil {
		e := channels.Classify(err)
		return e.Class, e.Reason
	}
	require.NotEmpty(t, outs)
	for _, o := range outs[1:] {
		require.Equal(t, outs[0].Class, o.Class)
		require.Equal(t, outs[0].Reason, o.Reason)
	}
	require.NotEqual(t, channels.Sent, outs[0].Status)
	return outs[0].Class, outs[0].Reason
}

// Statuses lists the outcomes' statuses.
func Statuses(outs []channels.Outcome) []channels.Status {
	s := make([]channels.Status, len(outs))
	for i, o := range outs {
		s[i] = o.Status
	}
	return s
}

// JSONOf is v as JSON.
func JSONOf(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// FakeClock is a settable clock for pacing tests.
type FakeClock struct {
	mu sync.Mutex
	t  time.Time
}

// NewFakeClock is a clock at t.
func NewFakeClock(t time.Time) *FakeClock { return &FakeClock{t: t} }

// Now is the clock's time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Drive sends a batch the way the engine would, resending what may be
// resent (failed with retry_now/retry_later and, when resendUnknown, the
// ambiguous ones the provider dedupes) until nothing is left or rounds run
// out. It keeps the idempotency keys the channel records, as the ledger
// does, and resends an ambiguous delivery with its key (a delivery that
// certainly was not sent is released and gets a new one). Between rounds
// it calls wait (when not nil) with the longest wait a provider asked for,
// as the engine waits before resending.
func Drive(t testing.TB, ch channels.Channel, ds []channels.Delivery, size int, resendUnknown bool, rounds int, wait func(time.Duration)) map[string]channels.Outcome {
	t.Helper()
	final := map[string]channels.Outcome{}
	keys := map[string]string{} // address → recorded key
	pending := ds
	for round := 0; round < rounds && len(pending) > 0; round++ {
		if round > 0 && wait != nil {
			var longest time.Duration
			for _, d := range pending {
				longest = max(longest, final[d.Recipient.Address].RetryAfter)
			}
			wait(longest)
		}
		var next []channels.Delivery
		for start := 0; start < len(pending); start += size {
			end := min(start+size, len(pending))
			part := append([]channels.Delivery(nil), pending[start:end]...)
			for i := range part {
				part[i].Key = keys[part[i].Recipient.Address]
			}
			b := Batch(part)
			b.RecordKeys = func(_ context.Context, ks []string) error {
				for i, k := range ks {
					keys[part[i].Recipient.Address] = k
				}
				return nil
			}
			outs, err := ch.Send(context.Background(), b)
			for i, d := range part {
				var o channels.Outcome
				if err != nil {
					e := channels.Classify(err)
					o = channels.Outcome{Status: channels.Failed, Class: e.Class, Reason: e.Reason, RetryAfter: e.RetryAfter}
					if e.Class == channels.Ambiguous {
						o.Status = channels.Unknown
					}
				} else {
					o = outs[i]
				}
				final[d.Recipient.Address] = o
				retry := o.Status == channels.Failed && (o.Class == channels.RetryNow || o.Class == channels.RetryLater)
				if o.Status == channels.Unknown && resendUnknown {
					retry = true
				}
				if o.Status == channels.Failed {
					delete(keys, d.Recipient.Address) // not sent: released, a new key next time
				}
				if retry {
					next = append(next, d)
				}
			}
		}
		pending = next
	}
	return final
}

// NewWeComFake is a WeCom fake for corp ww-corp, agent 1000002, closed
// when the test ends; WeComConfig is the wecom.* channel config that talks
// to it (extra: more key, value pairs).
func NewWeComFake(t testing.TB) *fakes.WeCom {
	f := fakes.NewWeCom("ww-corp", "app-secret", "1000002")
	t.Cleanup(f.Close)
	return f
}

// WeComConfig: see NewWeComFake.
func WeComConfig(f *fakes.WeCom, extra ...any) map[string]any {
	cfg := map[string]any{"corp_id": "ww-corp", "agent_id": 1000002, "secret": "app-secret", "base_url": f.URL(), "timeout": "2s"}
	for i := 0; i+1 < len(extra); i += 2 {
		cfg[extra[i].(string)] = extra[i+1]
	}
	return cfg
}
