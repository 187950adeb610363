package workflows

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/channels/fakes"
)

// TestFaultyProviderDeliversExactlyOnce sends to 10,000 recipients while the
// provider fails one call in five (rate limits, server errors, 5xx, hangs
// before and after delivering, token expiry): the ledger, activity retries
// and the providers' own dedupe deliver to each recipient exactly once,
// counted at the fake.
func TestFaultyProviderDeliversExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 recipients")
	}
	const users = 10000
	t.Run("jpush", func(t *testing.T) {
		fake := fakes.NewJPush("app", "secret")
		defer fake.Close()
		fake.KeepRequests = false
		fake.Random(7, 0.2, fakes.RateLimit, fakes.ServerError, fakes.HTTP5xx, fakes.Timeout, fakes.TimeoutAfterDelivery)
		h := newHarnessWith(t, fmt.Sprintf(`channels:
  push: {provider: jpush, base_url: "%s", app_key: app, master_secret: secret, timeout: 300ms}
`, fake.URL()))
		h.profiles(users, func(i int) map[string]any {
			return map[string]any{"push_alias": fmt.Sprintf("alias%05d", i), "city": fmt.Sprintf("城市%d", i%10)}
		})
		// Ten texts (one per city), so a page of 1,000 is ten pushes: about
		// a hundred provider calls in all, enough for every fault kind.
		plan := h.deploy(`
id: faulty-push
trigger: {manual: {}}
steps:
  - id: hello
    push: {channel: push, title: 会员日, text: "{{ .user.city }}会员日，今日全场8折"}
`)
		res := h.run(plan)
		require.Equal(t, int64(users), res.Stats.Sent)
		require.Zero(t, res.Stats.Unknown)
		require.Empty(t, fake.Duplicates(), "a recipient got the push twice")
		require.Len(t, fake.Delivered(), users)
		injected := fake.Injected()
		for _, f := range []fakes.Fault{fakes.RateLimit, fakes.ServerError, fakes.HTTP5xx, fakes.Timeout, fakes.TimeoutAfterDelivery} {
			require.Positive(t, injected[f], "no %s fault was injected", f)
		}
		t.Logf("faults injected: %v", injected)
	})
	t.Run("aliyun sms", func(t *testing.T) {
		fake := fakes.NewAliyunSMS("ak", "sk")
		defer fake.Close()
		fake.KeepRequests = false
		// SMS providers have no resend dedupe, so only faults that certainly
		// did not send are retried; a hang after sending would be unknown.
		// No hang is injected here, so the client waits long enough that a
		// loaded machine's slow answer is not taken for one (at 300 ms,
		// load ~20 made hundreds of them unknown).
		fake.Random(5, 0.2, fakes.RateLimit, fakes.ServerError)
		h := newHarnessWith(t, fmt.Sprintf(`channels:
  sms: {provider: aliyun, endpoint: "%s", access_key_id: ak, access_key_secret: sk, sign_name: 画布, timeout: 10s}
`, fake.URL()))
		h.profiles(users, func(i int) map[string]any {
			return map[string]any{"phone": fmt.Sprintf("138%08d", i), "name": fmt.Sprintf("用户%d", i)}
		})
		plan := h.deploy(`
id: faulty-sms
trigger: {manual: {}}
steps:
  - id: coupon
    push: {channel: sms, template: SMS_1234, params: {name: "{{ .user.name }}"}}
`)
		res := h.run(plan)
		require.Equal(t, int64(users), res.Stats.Sent)
		require.Empty(t, fake.Duplicates())
		require.Len(t, fake.Delivered(), users)
		t.Logf("faults injected: %v", fake.Injected())
	})
	t.Run("wecom.app", func(t *testing.T) {
		fake := fakes.NewWeCom("ww-corp", "secret", "1000002")
		defer fake.Close()
		fake.KeepRequests = false
		fake.Random(11, 0.2, fakes.RateLimit, fakes.ServerError, fakes.HTTP5xx, fakes.Timeout, fakes.TimeoutAfterDelivery, fakes.TokenExpired)
		h := newHarnessWith(t, fmt.Sprintf(`channels:
  wecom: {corp_id: ww-corp, agent_id: 1000002, secret: secret, base_url: "%s", timeout: 300ms, duplicate_check_interval: 1800, member_per_minute: 0, member_per_hour: 0}
`, fake.URL()))
		h.profiles(users, func(i int) map[string]any { return map[string]any{"wecom_userid": fmt.Sprintf("staff%05d", i)} })
		plan := h.deploy(`
id: faulty-wecom
trigger: {manual: {}}
steps:
  - id: notice
    push: {channel: wecom.app, to: user, text: 今天有新的客户群发任务}
`)
		res := h.run(plan)
		require.Equal(t, int64(users), res.Stats.Sent)
		require.Zero(t, res.Stats.Unknown)
		require.Empty(t, fake.Duplicates())
		require.Len(t, fake.Delivered(), users)
		t.Logf("faults injected: %v", fake.Injected())
	})
}
