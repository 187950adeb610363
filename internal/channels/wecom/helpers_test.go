package wecom_test

import "github.com/huabu/huabu/internal/channels/channeltest"

// The shared channel test helpers (internal/channels/channeltest), under the names
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
	newWeComFake = channeltest.NewWeComFake // the WeCom provider's fake and its channel config
	wecomCfg     = channeltest.WeComConfig
)

type fakeClock = channeltest.FakeClock
