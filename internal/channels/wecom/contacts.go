package wecom

import (
	"github.com/huabu/huabu/internal/channels"

	"context"
)

// screen runs before tasks are created: customers known to be no longer a
// contact of their sender fail as not_friend without a call, and a customer
// whose add_external_contact callback came moments ago gets the message as
// their welcome message (send_welcome_msg) instead of a mass-send task that
// their owner would have to confirm. It returns the deliveries left for tasks.
func (c *wecomCustomer) screen(ctx context.Context, b channels.Batch, todo []int, res *channels.Results) []int {
	if c.contacts == nil || len(todo) == 0 {
		return todo
	}
	pairs := make([]channels.ContactPair, len(todo))
	for k, i := range todo {
		r := b.Deliveries[i].Recipient
		pairs[k] = channels.ContactPair{Staff: r.Sender, ExternalUserID: r.Address}
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
			res.Fail(i, &channels.Error{Class: channels.Permanent, Reason: channels.ReasonNotFriend, Message: "no longer a contact of " + p.Staff + " (WeCom callback)"})
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
func (c *wecomCustomer) welcome(ctx context.Context, b channels.Batch, i int, p channels.ContactPair, code string, res *channels.Results) bool {
	claimed, err := c.contacts.ClaimWelcomeCode(ctx, p, code, c.now())
	if err != nil || !claimed {
		return false
	}
	err = sendWelcome(ctx, c.client, code, b.Deliveries[i].Message)
	if err == nil {
		res.Sent(i, "welcome_msg")
		return true
	}
	e := channels.Classify(err)
	if e.Class == channels.Ambiguous {
		// It may have gone out: a task on top could be a second message.
		res.Fail(i, e)
		return true
	}
	c.log.Info("wecom.customer: welcome code not usable; creating a task instead", "batch", b.Key, "sender", p.Staff, "customer", channels.Mask(p.ExternalUserID), "errcode", e.Code, "reason", e.Reason)
	return false
}

// API gives the staff SOP loop the API behind this channel.
func (c *wecomCustomer) API() *API { return c.api }
