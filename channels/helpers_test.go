package channels_test

import (
	"testing"

	"github.com/huabu/huabu/channels/channeltest"
	"github.com/huabu/huabu/channels/fakes"
	_ "github.com/huabu/huabu/channels/wecom" // registers the wecom.* providers
)

// The shared channel test helpers (channels/channeltest), under the names
// this package's tests use.
var (
	testDeps     = channeltest.Deps
	newChannel   = channeltest.NewChannel
	deliveries   = channeltest.Deliveries
	batch        = channeltest.Batch
	ctxTimeout   = channeltest.CtxTimeout
	classOf      = channeltest.ClassOf
	verdict      = channeltest.Verdict
	statuses     = channeltest.Statuses
	jsonOf       = channeltest.JSONOf
	drive        = channeltest.Drive
	newFakeClock = channeltest.NewFakeClock
)

type fakeClock = channeltest.FakeClock

// The WeCom provider lives in channels/wecom; the registry and benchmark
// tests here build its channels through channels.Lookup.
func newWeComFake(t testing.TB) *fakes.WeCom {
	f := fakes.NewWeCom("ww-corp", "app-secret", "1000002")
	t.Cleanup(f.Close)
	return f
}

func wecomCfg(f *fakes.WeCom, extra ...any) map[string]any {
	cfg := map[string]any{"corp_id": "ww-corp", "agent_id": 1000002, "secret": "app-secret", "base_url": f.URL(), "timeout": "2s"}
	for i := 0; i+1 < len(extra); i += 2 {
		cfg[extra[i].(string)] = extra[i+1]
	}
	return cfg
}
