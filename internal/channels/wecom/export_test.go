package wecom

import (
	"context"
	"time"

	"github.com/huabu/huabu/internal/channels"
)

// SetSleep replaces how wecom.app waits for a member's rate window, so
// tests can run the pacing against a fake clock.
func SetSleep(ch channels.Channel, sleep func(ctx context.Context, d time.Duration) error) {
	ch.(*wecomApp).sleep = sleep
}

// ResetWeComTokens forgets cached access wecomTokens.
func ResetWeComTokens() {
	wecomTokens.Lock()
	wecomTokens.m = map[string]*wecomToken{}
	wecomTokens.Unlock()
}
