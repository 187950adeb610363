package wecom

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/outbound"
)

// memberPacer keeps app messages within WeCom's per-member limits (≤30 a
// minute and ≤1000 an hour by default). WeCom does not reject messages over
// the limit, it drops them silently, so the channel must wait for a free slot
// instead of sending. Slots are reserved before the call and released when
// WeCom did not send (error, invalid user).
//
// With a channels.SlotBook (Deps.Slots: the store) the slots are booked in
// the store every worker shares, under book's key prefix, so the limits
// hold across workers (ADR 023); without, they are booked in this process.
type memberPacer struct {
	perMinute, perHour int
	book               channels.SlotBook
	prefix             string
	mu                 sync.Mutex
	sends              map[string][]time.Time // per member (lowercase), sorted, last hour only
	ops                int
}

func newMemberPacer(perMinute, perHour int, book channels.SlotBook, prefix string) *memberPacer {
	return &memberPacer{perMinute: perMinute, perHour: perHour, book: book, prefix: prefix, sends: map[string][]time.Time{}}
}

// bookTimeout bounds a booking in the store; a booking that fails holds the
// member's messages back a second (RetryLater), never sends unpaced.
const bookTimeout = 5 * time.Second

// reserve books the earliest slot at or after now for member. If that slot
// is within horizon it is recorded and ok is true; otherwise nothing is
// recorded and at says when a slot would be free.
func (p *memberPacer) reserve(member string, now time.Time, horizon time.Duration) (at time.Time, ok bool) {
	if p == nil || (p.perMinute <= 0 && p.perHour <= 0) {
		return now, true
	}
	key := strings.ToLower(member) // WeCom userids are case-insensitive
	if p.book != nil {
		ctx, cancel := context.WithTimeout(context.Background(), bookTimeout)
		defer cancel()
		at, ok, err := p.book.ReserveSlot(ctx, p.prefix+key, now, horizon, p.perMinute, p.perHour)
		if err != nil {
			return now.Add(time.Second), false
		}
		return at, ok
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gc(now)
	ts := prune(p.sends[key], now)
	at = outbound.NextSlot(ts, now, p.perMinute, p.perHour)
	if at.Sub(now) > horizon {
		p.sends[key] = ts
		return at, false
	}
	p.sends[key] = append(ts, at)
	return at, true
}

// release gives back a slot that was not used.
func (p *memberPacer) release(member string, at time.Time) {
	if p == nil || (p.perMinute <= 0 && p.perHour <= 0) {
		return
	}
	key := strings.ToLower(member)
	if p.book != nil {
		ctx, cancel := context.WithTimeout(context.Background(), bookTimeout)
		defer cancel()
		_ = p.book.ReleaseSlot(ctx, p.prefix+key, at) // a slot not given back only delays later sends
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := p.sends[key]
	for i, t := range ts {
		if t.Equal(at) {
			p.sends[key] = append(ts[:i], ts[i+1:]...)
			break
		}
	}
	if len(p.sends[key]) == 0 {
		delete(p.sends, key)
	}
}

func prune(ts []time.Time, now time.Time) []time.Time {
	cut := now.Add(-time.Hour)
	i := 0
	for i < len(ts) && !ts[i].After(cut) {
		i++
	}
	return ts[i:]
}

// gc drops members with no send in the last hour, now and then, so the map
// stays the size of the members actually messaged in the last hour.
func (p *memberPacer) gc(now time.Time) {
	p.ops++
	if p.ops < 4096 || p.ops < len(p.sends) {
		return
	}
	p.ops = 0
	for k, ts := range p.sends {
		if ts = prune(ts, now); len(ts) == 0 {
			delete(p.sends, k)
		} else {
			p.sends[k] = ts
		}
	}
}
