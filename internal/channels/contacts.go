package channels

import (
	"context"
	"time"

	"github.com/huabu/huabu/internal/outbound"
)

// ContactPair and ContactScreen are package outbound's (the store keeps
// them without importing the channels).
type (
	ContactPair   = outbound.ContactPair
	ContactScreen = outbound.ContactScreen
)

// ContactBook is what wecom.customer reads about contacts; the store
// implements it, kept current by the WeCom callback.
type ContactBook interface {
	ScreenContacts(ctx context.Context, pairs []ContactPair, now time.Time) (ContactScreen, error)
	// ClaimWelcomeCode marks the code used; only a true answer may send with it.
	ClaimWelcomeCode(ctx context.Context, pair ContactPair, code string, now time.Time) (bool, error)
}
