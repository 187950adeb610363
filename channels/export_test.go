package channels

import (
	"context"
	"time"
)

// SetSleep replaces how wecom.app waits for a member's rate window, so
// tests can run the pacing against a fake clock.
func SetSleep(ch Channel, sleep func(ctx context.Context, d time.Duration) error) {
	ch.(*wecomApp).sleep = sleep
}

// ResetWeComTokens forgets cached access tokens.
func ResetWeComTokens() {
	wecomTokens.Lock()
	wecomTokens.m = map[string]*wecomToken{}
	wecomTokens.Unlock()
}

var ParsePhone = func(s string) (national string, mainland, ok bool) {
	p, ok := parsePhone(s)
	return p.national, p.mainland, ok
}
