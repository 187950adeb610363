package channels_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/channels"
)

// TestProvidersPaceTheirCalls: once a provider says its rate-limit window
// is used up, the channel makes no more calls until it resets; the
// deliveries come back as retry_later with the wait the provider named.
func TestProvidersPaceTheirCalls(t *testing.T) {
	t.Run("jpush: the last call of the window holds the rest", func(t *testing.T) {
		f := newJPushFake(t)
		f.Limit, f.Window = 2, 5*time.Second
		ch := newChannel(t, "push", "jpush", jpushCfg(f, "use_cid", false))
		for _, alias := range []string{"a1", "a2"} {
			outs, err := ch.Send(context.Background(), batch(deliveries(alias)))
			require.NoError(t, err)
			require.Equal(t, channels.Sent, outs[0].Status)
		}
		calls := len(f.Requests())
		_, err := ch.Send(context.Background(), batch(deliveries("a3")))
		e := channels.Classify(err)
		require.Equal(t, channels.RetryLater, e.Class)
		require.Equal(t, channels.ReasonRateLimited, e.Reason)
		require.Greater(t, e.RetryAfter, 2*time.Second)
		require.LessOrEqual(t, e.RetryAfter, 5*time.Second)
		require.Equal(t, calls, len(f.Requests()), "no call while the window is used up")
		require.Zero(t, f.Refused())
	})
}
