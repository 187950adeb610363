package workflows

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/channels/fakes"
	"github.com/huabu/huabu/internal/store"
)

// diesAfterTheCall is the store of a worker that dies right after the
// provider answered and before the ledger was settled: the first
// SettleDeliveries fails, leaving that attempt's rows pending, as a SIGKILL
// there would. It then hands the retry to "another process": a channel set
// built afresh, with nothing in memory from the first.
type diesAfterTheCall struct {
	activities.Store
	once    sync.Once
	died    bool
	restart func()
}

func (s *diesAfterTheCall) SettleDeliveries(ctx context.Context, key store.LedgerKey, batch string, settle []store.Settlement) error {
	die := false
	s.once.Do(func() { die = true })
	if die {
		s.died = true
		s.restart()
		return errors.New("worker killed")
	}
	return s.Store.SettleDeliveries(ctx, key, batch, settle)
}

// TestCrashAfterTheCallResendsUnderTheSameKey: a worker dies after the
// provider took a page's messages and before the ledger recorded it. On a
// channel with a provider idempotency key (JPush cid, WeCom's duplicate
// check) the next attempt, in another process, resends the page under the
// keys recorded before the call: the provider drops the repeat, every user
// has the message once and the ledger says sent. On a channel without one
// (SMS) the page is reported unknown and not resent: nobody gets it twice.
func TestCrashAfterTheCallResendsUnderTheSameKey(t *testing.T) {
	const users = 1500 // two pages: the crash hits the first
	tests := []struct {
		name     string
		channel  string
		config   func(url string) string
		fake     func() (url string, ledger *fakes.Ledger, closer func())
		profile  func(i int) map[string]any
		unknown  int64
		personal bool
	}{
		{"jpush cid", "push",
			func(url string) string {
				return fmt.Sprintf("channels:\n  push: {provider: jpush, base_url: %q, app_key: app, master_secret: secret}\n", url)
			},
			func() (string, *fakes.Ledger, func()) {
				f := fakes.NewJPush("app", "secret")
				f.KeepRequests = false
				return f.URL(), &f.Ledger, f.Close
			},
			func(i int) map[string]any { return map[string]any{"push_alias": fmt.Sprintf("alias%04d", i)} }, 0, false},
		{"jpush cid, personalised", "push",
			func(url string) string {
				return fmt.Sprintf("channels:\n  push: {provider: jpush, base_url: %q, app_key: app, master_secret: secret}\n", url)
			},
			func() (string, *fakes.Ledger, func()) {
				f := fakes.NewJPush("app", "secret")
				f.KeepRequests = false
				return f.URL(), &f.Ledger, f.Close
			},
			func(i int) map[string]any {
				return map[string]any{"push_alias": fmt.Sprintf("alias%04d", i), "name": fmt.Sprintf("会员%d", i)}
			}, 0, true},
		{"wecom duplicate check", "wecom.app",
			func(url string) string {
				return fmt.Sprintf("channels:\n  wecom: {corp_id: ww-corp, agent_id: 1000002, secret: secret, base_url: %q, member_per_minute: 0, member_per_hour: 0}\n", url)
			},
			func() (string, *fakes.Ledger, func()) {
				f := fakes.NewWeCom("ww-corp", "secret", "1000002")
				f.KeepRequests = false
				return f.URL(), &f.Ledger, f.Close
			},
			func(i int) map[string]any { return map[string]any{"wecom_userid": fmt.Sprintf("staff%04d", i)} }, 0, false},
		{"sms: no key, unknown", "sms",
			func(url string) string {
				return fmt.Sprintf("channels:\n  sms: {provider: aliyun, endpoint: %q, access_key_id: ak, access_key_secret: sk, sign_name: 画布}\n", url)
			},
			func() (string, *fakes.Ledger, func()) {
				f := fakes.NewAliyunSMS("ak", "sk")
				f.KeepRequests = false
				return f.URL(), &f.Ledger, f.Close
			},
			func(i int) map[string]any { return map[string]any{"phone": fmt.Sprintf("138%08d", i)} }, 1000, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url, delivered, closer := tc.fake()
			defer closer()
			h := newHarnessWith(t, tc.config(url))
			h.profiles(users, tc.profile)
			text := "会员日今日开启"
			if tc.personal {
				text = "{{ .user.name }}，会员日今日开启"
			}
			push := fmt.Sprintf(`{channel: %s, to: user, text: %q}`, tc.channel, text)
			if tc.channel == "sms" {
				push = `{channel: sms, template: SMS_1234}`
			}
			plan := h.deploy(fmt.Sprintf(`
id: crash-after-call
trigger: {manual: {}}
steps:
  - id: hello
    push: %s
`, push))
			cfgChannels := h.acts.Channels
			dying := &diesAfterTheCall{Store: h.acts.Store, restart: func() {
				fresh := newHarnessWith(t, tc.config(url)) // another process: new channels, same provider
				h.acts.Channels = fresh.acts.Channels
			}}
			h.acts.Store = dying
			res := h.run(plan)
			require.True(t, dying.died)
			require.NotSame(t, cfgChannels, h.acts.Channels)
			require.Empty(t, delivered.Duplicates(), "a user got the message twice")
			require.Equal(t, tc.unknown, res.Stats.Unknown)
			require.Equal(t, int64(users)-tc.unknown, res.Stats.Sent)
			require.Len(t, delivered.Delivered(), users, "the provider took every message once")
			counts := h.counts(plan.ID, 0)
			require.Equal(t, res.Stats.Sent, counts["hello"].Sent, "the report says what the ledger says")
		})
	}
}
