package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/store"
)

// TouchStore counts what each user was sent, for frequency caps: checked
// and recorded at once (ReserveTouches, settled by SettleTouches; ADR 023),
// or only read (Touches, previews).
type TouchStore interface {
	Touches(ctx context.Context, uids []int64, since time.Time) (map[int64]map[string]int, error)
	ReserveTouches(ctx context.Context, key store.LedgerKey, channel string, rules []store.CapRule, uids []int64, now time.Time) (map[int64]bool, error)
	SettleTouches(ctx context.Context, key store.LedgerKey, sentOn map[int64]string, notSent []int64) error
}

// Policy is the deployment's sending policy (policy: in huabu.yaml); a
// canvas may override it. It is checked here, at send time, for every
// channel, so no canvas can forget it.
type Policy struct {
	QuietHours *canvases.QuietHours
	Frequency  []canvases.FrequencyRule
	// RequireConsent names a profile trait that must be true for a user to
	// get marketing (policy.require_consent); "" sends without asking.
	RequireConsent string
}

// effective is the policy a canvas sends under.
type effective struct {
	quiet *canvases.QuietHours
	caps  []canvases.FrequencyRule
}

func (a *Activities) policyFor(p *canvases.Plan) effective {
	if p.Policy.Kind == "transactional" {
		return effective{} // receipts and verification codes go out whatever the hour
	}
	e := effective{quiet: a.Policy.QuietHours, caps: a.Policy.Frequency}
	if q := p.Policy.QuietHours; q != nil {
		e.quiet = q
		if q.Off {
			e.quiet = nil
		}
	}
	if f := p.Policy.Frequency; f != nil {
		e.caps = f.Rules
		if f.Off {
			e.caps = nil
		}
	}
	return e
}

func (e effective) active() bool { return e.quiet != nil || len(e.caps) > 0 }

// verdict is the policy's decision for one user.
type verdict struct {
	deferUntil time.Time // quiet hours, delay: send at this time instead
	suppress   string    // quiet_hours (drop) or frequency_cap
}

// judge applies quiet hours and frequency caps to a page's users. With
// reserve (a send's ledger key) the caps are checked and a touch recorded
// for each user they let through in one store transaction (ADR 023), so
// two sends at once — on two workers — cannot both pass a cap; without, it
// only reads (previews and estimates).
func (a *Activities) judge(ctx context.Context, e effective, channel string, now time.Time, rows []store.ProfileRow, reserve *store.LedgerKey) (map[int64]verdict, error) {
	out := map[int64]verdict{}
	if e.quiet != nil {
		fallback, _ := canvases.LoadLocation(a.Compiler.Options().Timezone)
		zones := map[string]*time.Location{}
		for _, r := range rows {
			var doc struct {
				Timezone string `json:"timezone"`
			}
			_ = json.Unmarshal(r.Doc, &doc)
			loc := fallback
			if doc.Timezone != "" {
				if l, ok := zones[doc.Timezone]; ok {
					loc = l
				} else if l, err := canvases.LoadLocation(doc.Timezone); err == nil {
					zones[doc.Timezone], loc = l, l
				}
			}
			if until, quiet := quietUntil(e.quiet, now.In(loc)); quiet {
				if e.quiet.Action == "drop" {
					out[r.UID] = verdict{suppress: channels.ReasonQuietHours}
				} else {
					out[r.UID] = verdict{deferUntil: until}
				}
			}
		}
	}
	if len(e.caps) > 0 {
		uids := make([]int64, 0, len(rows))
		for _, r := range rows {
			if _, decided := out[r.UID]; !decided {
				uids = append(uids, r.UID)
			}
		}
		if reserve != nil {
			rules := make([]store.CapRule, len(e.caps))
			for i, c := range e.caps {
				rules[i] = store.CapRule{Channel: c.Channel, Max: c.Max, Window: c.Per.Std()}
			}
			capped, err := a.Store.ReserveTouches(ctx, *reserve, channel, rules, uids, now)
			if err != nil {
				return nil, err
			}
			for _, uid := range uids {
				if capped[uid] {
					out[uid] = verdict{suppress: "frequency_cap"}
				}
			}
			return out, nil
		}
		// One count per distinct window: a daily SMS cap and a weekly
		// any-channel cap each see their own window.
		byWindow := map[time.Duration]map[int64]map[string]int{}
		for _, c := range e.caps {
			w := c.Per.Std()
			if _, done := byWindow[w]; done {
				continue
			}
			t, err := a.Store.Touches(ctx, uids, now.Add(-w))
			if err != nil {
				return nil, err
			}
			byWindow[w] = t
		}
		for _, uid := range uids {
			for _, c := range e.caps {
				if capped(c, channel, byWindow[c.Per.Std()][uid]) {
					out[uid] = verdict{suppress: "frequency_cap"}
					break
				}
			}
		}
	}
	return out, nil
}

// quietUntil reports whether a local time is in quiet hours, and when they end.
func quietUntil(q *canvases.QuietHours, local time.Time) (time.Time, bool) {
	var fh, fm, th, tm int
	fmt.Sscanf(q.From, "%d:%d", &fh, &fm)
	fmt.Sscanf(q.To, "%d:%d", &th, &tm)
	from, to := fh*60+fm, th*60+tm
	t := local.Hour()*60 + local.Minute()
	quiet := from < to && t >= from && t < to || from > to && (t >= from || t < to)
	if !quiet {
		return time.Time{}, false
	}
	end := time.Date(local.Year(), local.Month(), local.Day(), th, tm, 0, 0, local.Location())
	if !end.After(local) {
		end = end.AddDate(0, 0, 1)
	}
	return end, true
}

// capped reports whether one more message on channel would break a cap,
// given the user's messages per channel within the cap's window.
func capped(c canvases.FrequencyRule, channel string, touches map[string]int) bool {
	if c.Channel != "any" && c.Channel != channel {
		return false
	}
	n := 0
	for ch, k := range touches {
		if c.Channel == "any" || c.Channel == ch {
			n += k
		}
	}
	return n >= c.Max
}
