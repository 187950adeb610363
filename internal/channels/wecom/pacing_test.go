package wecom_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/channels/fakes"
	"github.com/huabu/huabu/internal/channels/wecom"
)

// TestWeComPacesItsCalls: once WeCom says the minute's window is used up
// (45009), wecom.app makes no more calls until it resets.
func TestWeComPacesItsCalls(t *testing.T) {
	t.Run("wecom.app: 45009 holds calls until the next minute", func(t *testing.T) {
		f := newWeComFake(t)
		clock := newFakeClock(time.Date(2026, 3, 1, 9, 0, 20, 0, time.UTC))
		f.Now = clock.Now
		deps := testDeps()
		deps.Now = clock.Now
		ch := newChannel(t, "wecom.app", "wecom", wecomCfg(f, "member_per_minute", 0, "member_per_hour", 0), deps)
		var slept []time.Duration
		wecom.SetSleep(ch, func(_ context.Context, d time.Duration) error { slept = append(slept, d); clock.Advance(d); return nil })
		_, err := ch.Send(context.Background(), batch(deliveries("warm-up"))) // fetch the token
		require.NoError(t, err)
		f.Script(fakes.RateLimit)
		_, err = ch.Send(context.Background(), batch(deliveries("zhangsan")))
		e := channels.Classify(err)
		require.Equal(t, channels.RetryLater, e.Class)
		require.Equal(t, "45009", e.Code)
		require.Equal(t, 40*time.Second+500*time.Millisecond, e.RetryAfter, "until 09:01, and a little")
		calls := len(f.Requests())
		clock.Advance(30 * time.Second)
		_, err = ch.Send(context.Background(), batch(deliveries("lisi")))
		e = channels.Classify(err)
		require.Equal(t, channels.RetryLater, e.Class)
		require.Equal(t, 10*time.Second+500*time.Millisecond, e.RetryAfter)
		require.Equal(t, calls, len(f.Requests()), "no call until the minute is over")
		clock.Advance(9 * time.Second)
		outs, err := ch.Send(context.Background(), batch(deliveries("lisi")))
		require.NoError(t, err)
		require.Equal(t, channels.Sent, outs[0].Status)
		require.Equal(t, []time.Duration{1500 * time.Millisecond}, slept, "a wait under two seconds is waited out in the call")
	})
}
