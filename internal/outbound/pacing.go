package outbound

import "time"

// NextSlot is the earliest time at or after now at which one more message
// keeps a sender within perMinute and perHour (0: no limit), given the
// slots already booked for it (sorted, the last hour's at least). Slots are
// handed out in order (a new one never precedes a booked one), so only the
// windows ending at the new slot can overflow: it is free once the slot
// `limit` places back has left the window. The WeCom member pacer books
// with it in memory and the store books with it for every worker.
func NextSlot(booked []time.Time, now time.Time, perMinute, perHour int) time.Time {
	at := now
	if n := len(booked); n > 0 && booked[n-1].After(at) {
		at = booked[n-1]
	}
	for _, w := range []struct {
		limit  int
		window time.Duration
	}{{perMinute, time.Minute}, {perHour, time.Hour}} {
		if w.limit > 0 && len(booked) >= w.limit {
			if free := booked[len(booked)-w.limit].Add(w.window); free.After(at) {
				at = free
			}
		}
	}
	return at
}
