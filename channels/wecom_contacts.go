package channels

import (
	"context"
	"time"
)

// ContactPair is a customer (external userid) of a staff member.
type ContactPair struct {
	Staff          string `json:"staff"`
	ExternalUserID string `json:"external_userid"`
}

// ContactScreen is what the contact book knows about the pairs of a batch.
type ContactScreen struct {
	// Unreachable pairs are no longer contacts (del_external_contact or
	// del_follow_user): WeCom would put them in fail_list anyway.
	Unreachable map[ContactPair]bool
	// Welcome holds unused welcome codes still inside their 20 s window.
	Welcome map[ContactPair]string
}

// ContactBook is what wecom.customer reads about contacts; the store
// implements it, kept current by the WeCom callback.
type ContactBook interface {
	ScreenContacts(ctx context.Context, pairs []ContactPair, now time.Time) (ContactScreen, error)
	// ClaimWelcomeCode marks the code used; only a true answer may send with it.
	ClaimWelcomeCode(ctx context.Context, pair ContactPair, code string, now time.Time) (bool, error)
}

// screen runs before tasks are created: customers known to be no longer a
// contact of their sender fail as not_friend without a call, and a customer
// whose add_external_contact callback came moments ago gets the message as
// their welcome message (send_welcome_msg) instead of a mass-send task that
// their owner would have to confirm. It returns the deliveries left for tasks.
func (c *wecomCustomer) screen(ctx context.Context, b Batch, todo []int, res *results) []int {
	if c.contacts == nil || len(todo) == 0 {
		return todo
	}
	pairs := make([]ContactPair, len(todo))
	for k, i := range todo {
		r := b.Deliveries[i].Recipient
		pairs[k] = ContactPair{Staff: r.Sender, ExternalUserID: r.Address}
	}
	sc, err := c.contacts.ScreenContacts(ctx, pairs, c.now())
	if err != nil {
		// The book only saves calls and enables welcome messages: without it
		// the customers still get their task.
		c.log.Warn("wecom.customer: contact book unavailable", "batch", b.Key, "err", err)
		return todo
	}
	if len(sc.Unreachable) == 0 && len(sc.Welcome) == 0 {
		return todo
	}
	kept := make([]int, 0, len(todo))
	for k, i := range todo {
		p := pairs[k]
		if sc.Unreachable[p] {
			res.fail(i, &Error{Class: Permanent, Reason: ReasonNotFriend, Message: "no longer a contact of " + p.Staff + " (WeCom callback)"})
			continue
		}
		if code, ok := sc.Welcome[p]; ok && c.welcome(ctx, b, i, p, code, res) {
			continue
		}
		kept = append(kept, i)
	}
	return kept
}

// welcome sends delivery i with a welcome code; false leaves it for a task
// (the code was taken, expired or refused: nothing was sent).
func (c *wecomCustomer) welcome(ctx context.Context, b Batch, i int, p ContactPair, code string, res *results) bool {
	claimed, err := c.contacts.ClaimWelcomeCode(ctx, p, code, c.now())
	if err != nil || !claimed {
		return false
	}
	err = sendWelcome(ctx, c.client, code, b.Deliveries[i].Message)
	if err == nil {
		res.sent(i, "welcome_msg")
		return true
	}
	e := Classify(err)
	if e.Class == Ambiguous {
		// It may have gone out: a task on top could be a second message.
		res.fail(i, e)
		return true
	}
	c.log.Info("wecom.customer: welcome code not usable; creating a task instead", "batch", b.Key, "sender", p.Staff, "customer", mask(p.ExternalUserID), "errcode", e.Code, "reason", e.Reason)
	return false
}

// WeComAPI gives the staff SOP loop the API behind this channel.
func (c *wecomCustomer) WeComAPI() *WeComAPI { return c.api }
