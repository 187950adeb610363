package traits

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/store"
)

// aggConfig declares every aggregate kind with and without a window.
const aggConfig = `
profile:
  attributes: {name: string, level: string, city: string}
  traits:
    n_all: {count: purchase}
    n_30d: {count: purchase, within: 30d}
    sum_all: {sum: purchase.amount}
    sum_30d: {sum: purchase.amount, within: 30d}
    min_all: {min: purchase.amount}
    min_30d: {min: purchase.amount, within: 30d}
    max_all: {max: purchase.amount}
    max_30d: {max: purchase.amount, within: 30d}
    first_sku: {first: purchase.sku}
    first_sku_30d: {first: purchase.sku, within: 30d}
    last_sku: {last: purchase.sku}
    last_sku_30d: {last: purchase.sku, within: 30d}
    days_since_purchase: {days_since: purchase}
    days_since_purchase_30d: {days_since: purchase, within: 30d}
    views_7d: {count: view, within: 7d}
events:
  purchase: {amount: number, sku: string}
`

func buy(user string, amount float64, sku string, at time.Time) ev {
	return ev{user: user, name: "purchase", props: map[string]any{"amount": amount, "sku": sku}, at: at}
}

func TestAggregates(t *testing.T) {
	e := newEnv(t, aggConfig)
	now := t0
	e.identify("nobody", map[string]any{"name": "无事"})
	e.track(
		buy("u1", 100, "A", now.Add(-40*day)),
		buy("u1", 30, "B", now.Add(-20*day)),
		buy("u1", 50, "C", now.Add(-2*day-time.Hour)),
		ev{user: "u1", name: "view", at: now.Add(-day)},
		ev{user: "u1", name: "refund", props: map[string]any{"amount": 999, "sku": "Z"}, at: now.Add(-time.Hour)},
	)
	require.Equal(t, 2, e.refresh(), "u1 and nobody were dirty")
	require.Equal(t, map[string]any{
		"n_all": 3.0, "n_30d": 2.0,
		"sum_all": 180.0, "sum_30d": 80.0,
		"min_all": 30.0, "min_30d": 30.0,
		"max_all": 100.0, "max_30d": 50.0,
		"first_sku": "A", "first_sku_30d": "B",
		"last_sku": "C", "last_sku_30d": "C",
		"days_since_purchase": 2.0, "days_since_purchase_30d": 2.0,
		"views_7d": 1.0,
	}, e.traits("u1"))
	require.Equal(t, map[string]any{"n_all": 0.0, "n_30d": 0.0, "sum_all": 0.0, "sum_30d": 0.0, "views_7d": 0.0},
		e.traits("nobody"), "counts and sums of nothing are 0; min, max, first, last and days_since are absent")
	require.Equal(t, "无事", e.doc("nobody")["name"])
	require.Zero(t, e.refresh(), "nothing is due until something changes")
}

// TestWindowBoundary: an event belongs to a window of w while now-ts < w,
// and the user is due exactly when it leaves.
func TestWindowBoundary(t *testing.T) {
	e := newEnv(t, aggConfig)
	at := t0.Add(-30*day + time.Millisecond)
	e.track(buy("u1", 10, "A", at))
	e.refresh()
	require.Equal(t, 1.0, e.traits("u1")["n_30d"])
	e.clk.Advance(time.Millisecond - 1) // not yet
	require.Zero(t, e.refresh())
	require.Equal(t, 1.0, e.traits("u1")["n_30d"])
	e.clk.Advance(1) // now - ts == 30d: it has left the window
	require.Equal(t, 1, e.refresh())
	tr := e.traits("u1")
	require.Equal(t, 0.0, tr["n_30d"])
	require.Equal(t, 0.0, tr["sum_30d"])
	require.NotContains(t, tr, "min_30d")
	require.NotContains(t, tr, "first_sku_30d")
	require.NotContains(t, tr, "days_since_purchase_30d")
	require.Equal(t, 1.0, tr["n_all"], "all-time values keep it")
	require.Equal(t, "A", tr["last_sku"])
	require.Equal(t, 30.0, tr["days_since_purchase"])
}

// TestWindowSlides: time passes with no events at all; values follow.
func TestWindowSlides(t *testing.T) {
	e := newEnv(t, aggConfig)
	e.track(
		buy("u1", 100, "A", t0.Add(-25*day)),
		buy("u1", 30, "B", t0.Add(-10*day)),
		buy("u1", 50, "C", t0.Add(-3*day)),
		ev{user: "u1", name: "view", at: t0.Add(-6 * day)},
		buy("u2", 7, "X", t0.Add(-100*day)),
	)
	e.refresh()
	tr := e.traits("u1")
	require.Equal(t, 3.0, tr["n_30d"])
	require.Equal(t, 180.0, tr["sum_30d"])
	require.Equal(t, 100.0, tr["max_30d"])
	require.Equal(t, "A", tr["first_sku_30d"])
	require.Equal(t, 1.0, tr["views_7d"])
	require.Equal(t, 3.0, tr["days_since_purchase"])

	// Day by day for 40 days; only users whose values change are recomputed.
	type snap struct{ n, sum, max, views, days any }
	var got []snap
	for d := 1; d <= 40; d++ {
		e.clk.Advance(day)
		e.refresh()
		tr := e.traits("u1")
		got = append(got, snap{tr["n_30d"], tr["sum_30d"], tr["max_30d"], tr["views_7d"], tr["days_since_purchase"]})
		require.Equal(t, float64(3+d), tr["days_since_purchase"], "day %d", d)
	}
	// The view (6 days old) leaves the 7d window on day 1; A (25d) on day 5;
	// B (10d) on day 20; C (3d) on day 27.
	require.Equal(t, snap{3.0, 180.0, 100.0, 0.0, 4.0}, got[0])
	require.Equal(t, snap{3.0, 180.0, 100.0, 0.0, 7.0}, got[3])
	require.Equal(t, snap{2.0, 80.0, 50.0, 0.0, 8.0}, got[4])
	require.Equal(t, snap{2.0, 80.0, 50.0, 0.0, 22.0}, got[18])
	require.Equal(t, snap{1.0, 50.0, 50.0, 0.0, 23.0}, got[19])
	require.Equal(t, snap{1.0, 50.0, 50.0, 0.0, 29.0}, got[25])
	require.Equal(t, snap{0.0, 0.0, nil, 0.0, 30.0}, got[26])
	require.Equal(t, "A", e.traits("u1")["first_sku"], "all-time values stay")
	require.Equal(t, 140.0, e.traits("u2")["days_since_purchase"])
}

// TestDueOnlyWhenValuesChange: a user whose values cannot change with time
// (all-time traits, no days_since) is never recomputed by the clock alone.
func TestDueOnlyWhenValuesChange(t *testing.T) {
	e := newEnv(t, `
profile:
  traits:
    n_all: {count: purchase}
    spend: {sum: purchase.amount}
    n_7d: {count: purchase, within: 7d}
`)
	e.track(purchase("u1", 5, t0.Add(-time.Hour)), purchase("u2", 5, t0.Add(-30*day)))
	require.Equal(t, 2, e.refresh())
	require.Zero(t, e.pending())
	e.clk.Advance(365 * day)
	require.Equal(t, 1, e.refresh(), "only u1 had an event inside a window")
	require.Equal(t, 0.0, e.traits("u1")["n_7d"])
	e.clk.Advance(365 * day)
	require.Zero(t, e.refresh(), "nothing left to expire")
}

// TestOutOfOrder: an event whose timestamp is older than what is stored
// (a retry, an offline SDK, an import of history after live traffic).
func TestOutOfOrder(t *testing.T) {
	e := newEnv(t, aggConfig)
	e.track(buy("u1", 50, "C", t0.Add(-2*day)))
	e.refresh()
	require.Equal(t, "C", e.traits("u1")["first_sku_30d"])

	e.track(buy("u1", 70, "B", t0.Add(-20*day)))  // older, inside the window
	e.track(buy("u1", 900, "A", t0.Add(-50*day))) // older than the window
	e.refresh()
	tr := e.traits("u1")
	require.Equal(t, "B", tr["first_sku_30d"])
	require.Equal(t, "A", tr["first_sku"])
	require.Equal(t, "C", tr["last_sku"], "last is by event time, not arrival")
	require.Equal(t, "C", tr["last_sku_30d"])
	require.Equal(t, 2.0, tr["n_30d"])
	require.Equal(t, 3.0, tr["n_all"])
	require.Equal(t, 120.0, tr["sum_30d"])
	require.Equal(t, 900.0, tr["max_all"])
	require.Equal(t, 70.0, tr["max_30d"])
	require.Equal(t, 2.0, tr["days_since_purchase"], "an old event does not make the last purchase older")

	// The late event moved the user's due time earlier: B leaves on day 10.
	e.clk.Advance(10 * day)
	e.refresh()
	tr = e.traits("u1")
	require.Equal(t, 1.0, tr["n_30d"])
	require.Equal(t, "C", tr["first_sku_30d"])

	// A newer event arriving late counts as the last one.
	e.track(buy("u1", 1, "D", e.clk.Now().Add(-time.Minute)))
	e.track(buy("u1", 2, "E", e.clk.Now().Add(-time.Hour)))
	e.refresh()
	require.Equal(t, "D", e.traits("u1")["last_sku"])
	require.Equal(t, 0.0, e.traits("u1")["days_since_purchase"])
}

// TestSameTimestamp: events with the same time are ordered by arrival for
// first and last.
func TestSameTimestamp(t *testing.T) {
	e := newEnv(t, aggConfig)
	at := t0.Add(-time.Hour)
	e.track(buy("u1", 1, "A", at), buy("u1", 2, "B", at))
	e.track(buy("u1", 3, "C", at))
	e.refresh()
	require.Equal(t, "A", e.traits("u1")["first_sku"])
	require.Equal(t, "C", e.traits("u1")["last_sku"])
}

// TestMissingAndOddProperties: events without the property, or with a
// value of another type, do not break numbers nor blank first/last.
func TestMissingAndOddProperties(t *testing.T) {
	e := newEnv(t, `
profile:
  traits:
    n: {count: purchase}
    spend: {sum: purchase.amount}
    low: {min: purchase.amount}
    high: {max: purchase.amount}
    first_sku: {first: purchase.sku}
    last_sku: {last: purchase.sku}
    last_items: {last: purchase.items}
    last_note: {last: purchase.note}
`)
	e.track(
		ev{user: "u1", name: "purchase", props: map[string]any{"amount": 10, "sku": "A", "items": []any{"x", "y"}, "note": "hello"}, at: t0.Add(-5 * time.Hour)},
		ev{user: "u1", name: "purchase", props: map[string]any{"amount": "12", "sku": nil}, at: t0.Add(-4 * time.Hour)},
		ev{user: "u1", name: "purchase", props: map[string]any{"amount": 2.5, "note": nil}, at: t0.Add(-3 * time.Hour)},
		ev{user: "u1", name: "purchase", props: map[string]any{}, at: t0.Add(-2 * time.Hour)},
		ev{user: "u2", name: "purchase", props: map[string]any{}, at: t0.Add(-2 * time.Hour)},
	)
	e.refresh()
	require.Equal(t, map[string]any{
		"n": 4.0, "spend": 12.5, "low": 2.5, "high": 10.0,
		"first_sku": "A", "last_sku": "A", "last_items": []any{"x", "y"}, "last_note": "hello",
	}, e.traits("u1"), "first/last are of the events that carry the property")
	require.Equal(t, map[string]any{"n": 1.0, "spend": 0.0}, e.traits("u2"))
}

// TestPropertyNames: property names that need quoting in a JSON path.
func TestPropertyNames(t *testing.T) {
	e := newEnv(t, `
profile:
  traits:
    total: {sum: order.total amount}
    last_city: {last: order.ship-to}
    cn: {sum: order.金额}
    quoted: {last: 'order.say "hi"'}
    dotted: {sum: order.a.b}
`)
	e.track(ev{user: "u1", name: "order", props: map[string]any{
		"total amount": 3, "ship-to": "上海", "金额": 8, `say "hi"`: "yo", "a.b": 4, "a": map[string]any{"b": 5},
	}, at: t0})
	e.refresh()
	require.Equal(t, map[string]any{"total": 3.0, "last_city": "上海", "cn": 8.0, "quoted": "yo", "dotted": 4.0}, e.traits("u1"),
		"a property is a top-level name, dots included")
}

const rfmConfig = `
profile:
  attributes: {name: string}
  traits:
    orders: {count: purchase}
  rfm: {event: purchase, amount: amount, window: 365d}
`

func scoreCounts(e *env, users []string, key string) map[float64]int {
	out := map[float64]int{}
	for _, u := range users {
		s := e.scores(u)
		out[s[key].(float64)]++
	}
	return out
}

// TestRFMQuintiles: 100 purchasers with distinct spend and recency get 20
// per score; scores follow changes in the data.
func TestRFMQuintiles(t *testing.T) {
	e := newEnv(t, rfmConfig)
	var users []string
	var evs []ev
	for i := 1; i <= 100; i++ {
		u := fmt.Sprintf("u%03d", i)
		users = append(users, u)
		// user i spent i, and bought 101-i hours ago: more is more recent.
		evs = append(evs, purchase(u, float64(i), t0.Add(-time.Duration(101-i)*time.Hour)))
	}
	e.track(evs...)
	e.identify("never", map[string]any{"name": "没买过"})
	e.refresh()
	require.Nil(t, e.scores("u001"), "no quintiles yet: nobody is scored before RefreshRFM")
	e.rfm()
	for i, u := range users {
		want := float64(i/20 + 1)
		require.Equal(t, map[string]any{"r": want, "f": 1.0, "m": want}, e.scores(u), u)
	}
	require.Equal(t, map[float64]int{1: 20, 2: 20, 3: 20, 4: 20, 5: 20}, scoreCounts(e, users, "m"))
	require.Nil(t, e.scores("never"), "a user who never purchased has no RFM scores")

	// u001 buys a lot now: at once scored against the standing boundaries.
	e.track(purchase("u001", 1000, t0))
	e.refresh()
	require.Equal(t, map[string]any{"r": 5.0, "f": 5.0, "m": 5.0}, e.scores("u001"))
	require.Equal(t, 2.0, e.scores("u021")["m"], "others keep their scores until the quintiles are recomputed")

	// Recomputed quintiles move everyone else down one place.
	e.rfm()
	require.Equal(t, map[string]any{"r": 5.0, "f": 5.0, "m": 5.0}, e.scores("u001"))
	require.Equal(t, map[string]any{"r": 1.0, "f": 1.0, "m": 1.0}, e.scores("u021"), "u021 is now in the lowest fifth")
	require.Equal(t, map[string]any{"r": 2.0, "f": 1.0, "m": 2.0}, e.scores("u022"))
	require.Equal(t, map[float64]int{1: 20, 2: 20, 3: 20, 4: 20, 5: 20}, scoreCounts(e, users, "m"))
	require.Equal(t, map[float64]int{1: 20, 2: 20, 3: 20, 4: 20, 5: 20}, scoreCounts(e, users, "r"))
	require.Equal(t, map[float64]int{1: 99, 5: 1}, scoreCounts(e, users, "f"), "ties stay together")
}

// TestRFMWindow: purchases older than the RFM window stop counting and a
// user with none left loses their scores, with no new event.
func TestRFMWindow(t *testing.T) {
	e := newEnv(t, rfmConfig)
	e.track(
		purchase("old", 500, t0.Add(-300*day)),
		purchase("old", 100, t0.Add(-200*day)),
		purchase("new", 50, t0.Add(-day)),
	)
	e.refresh()
	e.rfm()
	// Two purchasers: boundaries at the lower value twice, then the higher
	// twice, so the better one scores 3.
	require.Equal(t, map[string]any{"r": 1.0, "f": 3.0, "m": 3.0}, e.scores("old"))
	require.Equal(t, map[string]any{"r": 3.0, "f": 1.0, "m": 1.0}, e.scores("new"))

	e.clk.Advance(65 * day) // the 500 leaves the window
	e.refresh()
	require.Equal(t, map[string]any{"r": 1.0, "f": 1.0, "m": 3.0}, e.scores("old"), "scored at once against the standing boundaries")
	e.rfm()
	require.Equal(t, map[string]any{"r": 1.0, "f": 1.0, "m": 3.0}, e.scores("old"))
	require.Equal(t, map[string]any{"r": 3.0, "f": 1.0, "m": 1.0}, e.scores("new"))

	e.clk.Advance(100 * day) // nothing left for "old"
	e.refresh()
	require.Nil(t, e.scores("old"), "no purchase within the window: no scores")
	require.Equal(t, 2.0, e.traits("old")["orders"], "other traits are kept")
	e.rfm()
	require.Equal(t, map[string]any{"r": 1.0, "f": 1.0, "m": 1.0}, e.scores("new"), "the only purchaser left")
	var n int
	require.NoError(t, e.st.ScanRFM(e.ctx, func(store.RFMValue) { n++ }))
	require.Equal(t, 1, n)
}

func TestQuintiles(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want [4]float64
	}{
		{[]float64{7}, [4]float64{7, 7, 7, 7}},
		{[]float64{5, 4, 3, 2, 1}, [4]float64{1, 2, 3, 4}},
		{[]float64{1, 2}, [4]float64{1, 1, 2, 2}},
		{[]float64{1, 1, 1, 1, 9}, [4]float64{1, 1, 1, 1}},
	} {
		q := quintiles(slices.Clone(tc.in))
		require.Equal(t, tc.want, q, "%v", tc.in)
		// Every value scores within 1..5 and the largest scores highest.
		for _, v := range tc.in {
			s := scoreOf(v, q)
			require.GreaterOrEqual(t, s, 1.0)
			require.LessOrEqual(t, s, 5.0)
		}
	}
	q := quintiles([]float64{1, 2, 3, 4, 5})
	for v := 1.0; v <= 5; v++ {
		require.Equal(t, v, scoreOf(v, q))
	}
}

const tagConfig = `
profile:
  attributes: {name: string, level: string}
  traits:
    spend_90d: {sum: purchase.amount, within: 90d}
    days_since_last_order: {days_since: purchase}
  rfm: {event: purchase, amount: amount}
events:
  purchase: {amount: number}
tags:
  dormant: 'user.traits.days_since_last_order > 60'
  big_spender: 'user.traits.spend_90d >= 1000'
  gold: 'user.level == "gold"'
  top: 'user.rfm.m >= 3'
`

// TestAutoTags: rules add and remove their tags as events arrive, as
// attributes change and as time passes; other tags are left alone.
func TestAutoTags(t *testing.T) {
	e := newEnv(t, tagConfig)
	e.identify("u1", map[string]any{"name": "张三", "tags": []any{"vip"}})
	e.track(purchase("u1", 1200, t0.Add(-59*day)), purchase("u2", 10, t0.Add(-day)))
	e.refresh()
	e.rfm()
	require.Equal(t, []string{"vip", "big_spender", "top"}, e.tags("u1"))
	require.Equal(t, []string{}, e.tags("u2"), "a rule that turns nothing on writes no tag")

	// Two days pass: no event, yet u1 becomes dormant.
	e.clk.Advance(day)
	e.refresh()
	require.NotContains(t, e.tags("u1"), "dormant", "60 days is not more than 60")
	e.clk.Advance(day)
	e.refresh()
	require.Equal(t, []string{"vip", "big_spender", "top", "dormant"}, e.tags("u1"))

	// The purchase leaves the 90d window: big_spender goes, with no event.
	e.clk.Advance(29 * day)
	e.refresh()
	require.Equal(t, []string{"vip", "top", "dormant"}, e.tags("u1"))

	// A new purchase ends dormancy; an identify tags by attribute.
	e.track(purchase("u1", 5, e.clk.Now()))
	e.identify("u1", map[string]any{"level": "gold"})
	e.refresh()
	require.Equal(t, []string{"vip", "top", "gold"}, e.tags("u1"))
	e.identify("u1", map[string]any{"level": "silver"})
	e.refresh()
	require.Equal(t, []string{"vip", "top"}, e.tags("u1"))

	// An identify that replaces the tags list (Segment: arrays replace) keeps
	// what the user sent, and the rules put back what they own.
	e.identify("u1", map[string]any{"tags": []any{"宝妈"}})
	e.refresh()
	require.Equal(t, []string{"宝妈", "top"}, e.tags("u1"))
	// Removing a rule-owned tag by hand lasts until the next recomputation.
	require.NoError(t, e.st.UpdateTags(e.ctx, []int64{uid(t, e, "u1")}, nil, []string{"top"}))
	e.identify("u1", map[string]any{"name": "张三丰"})
	e.refresh()
	require.Equal(t, []string{"宝妈", "top"}, e.tags("u1"))
}

func uid(t testing.TB, e *env, user string) int64 {
	row, err := e.st.ProfileByID(e.ctx, user)
	require.NoError(t, err)
	return row.UID
}

// TestRFMTagsFollowRescoring: a tag on RFM scores changes when quintiles are
// recomputed, even for users with no new event.
func TestRFMTagsFollowRescoring(t *testing.T) {
	e := newEnv(t, tagConfig)
	var evs []ev
	for i := 1; i <= 10; i++ {
		evs = append(evs, purchase(fmt.Sprintf("u%02d", i), float64(i*10), t0.Add(-time.Duration(i)*time.Hour)))
	}
	e.track(evs...)
	e.refresh()
	e.rfm()
	// Spends 10..100: boundaries 20, 40, 60, 80; m >= 3 is a spend above 40.
	require.Contains(t, e.tags("u06"), "top")
	require.NotContains(t, e.tags("u04"), "top")
	for i := 11; i <= 15; i++ {
		e.track(purchase(fmt.Sprintf("u%02d", i), 5000, t0))
	}
	e.refresh()
	require.Contains(t, e.tags("u06"), "top", "until the quintiles are recomputed")
	e.rfm()
	// Now 30, 60, 90, 5000: u06 (60) scores 2.
	require.NotContains(t, e.tags("u06"), "top", "outranked: the tag goes when the quintiles move")
	require.Contains(t, e.tags("u07"), "top")
	require.Contains(t, e.tags("u15"), "top")
}

// TestIdentifyNotClobbered: computed traits and identify attributes live
// side by side; neither overwrites the other, even interleaved.
func TestIdentifyNotClobbered(t *testing.T) {
	e := newEnv(t, tagConfig)
	e.identify("u1", map[string]any{"name": "张三", "level": "gold", "member_no": 12345678901234567, "prefs": map[string]any{"sms": true}})
	e.track(purchase("u1", 100, t0))
	e.refresh()
	e.identify("u1", map[string]any{"city": "上海"})
	doc := e.doc("u1")
	require.Equal(t, map[string]any{"spend_90d": 100.0, "days_since_last_order": 0.0}, doc["traits"], "an identify leaves computed traits alone")
	e.refresh()
	raw, err := e.st.ProfileByID(e.ctx, "u1")
	require.NoError(t, err)
	require.Contains(t, string(raw.Doc), `"member_no":12345678901234567`, "large integers survive a recomputation exactly")
	doc = e.doc("u1")
	require.Equal(t, "张三", doc["name"])
	require.Equal(t, "上海", doc["city"])
	require.Equal(t, "gold", doc["level"])
	require.Equal(t, map[string]any{"sms": true}, doc["prefs"])
	require.Equal(t, map[string]any{"spend_90d": 100.0, "days_since_last_order": 0.0}, doc["traits"])

	// Interleaved: identifies and purchases race with the engine's loop.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.eng.Run(ctx, RunOptions{Refresh: 5 * time.Millisecond, RFM: time.Hour}); close(done) }()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				u := fmt.Sprintf("c%d", w)
				e.identify(u, map[string]any{fmt.Sprintf("a%02d", i): i})
				e.track(purchase(u, 1, t0))
				e.eng.Notify()
			}
		}()
	}
	wg.Wait()
	require.NoError(t, e.eng.WaitCurrent(context.Background()))
	cancel()
	<-done
	for w := 0; w < 4; w++ {
		doc := e.doc(fmt.Sprintf("c%d", w))
		for i := 0; i < 25; i++ {
			require.Equal(t, float64(i), doc[fmt.Sprintf("a%02d", i)])
		}
		require.Equal(t, 25.0, doc["traits"].(map[string]any)["spend_90d"])
	}
}

// TestImportedProfilesComputed: profiles loaded by an import (not an
// identify call) get their traits and tags too.
func TestImportedProfilesComputed(t *testing.T) {
	e := newEnv(t, tagConfig)
	_, err := e.st.UpsertProfiles(e.ctx, []store.ProfileUpdate{
		{ID: "p1", Patch: []byte(`{"id":"p1","level":"gold"}`)},
		{ID: "p2", Patch: []byte(`{"id":"p2","level":"silver"}`)},
	})
	require.NoError(t, err)
	require.Equal(t, 2, e.refresh())
	require.Equal(t, []string{"gold"}, e.tags("p1"))
	require.Equal(t, map[string]any{"spend_90d": 0.0}, e.traits("p2"))
}

// TestDefinitionsChange: a new config recomputes every profile once.
func TestDefinitionsChange(t *testing.T) {
	e := newEnv(t, rfmConfig)
	require.NoError(t, e.eng.Sync(e.ctx))
	e.track(purchase("u1", 10, t0.Add(-10*day)), purchase("u1", 20, t0.Add(-40*day)))
	e.identify("u2", map[string]any{"name": "x"})
	e.refresh()
	e.rfm()
	require.NotNil(t, e.scores("u1"))
	require.NoError(t, e.eng.Sync(e.ctx))
	require.Zero(t, e.pending(), "same definitions: nothing to redo")

	e.reconfigure(`
profile:
  attributes: {name: string}
  traits:
    orders: {count: purchase}
    orders_30d: {count: purchase, within: 30d}
tags:
  buyer: 'user.traits.orders > 0'
`)
	require.NoError(t, e.eng.Sync(e.ctx))
	require.Equal(t, int64(2), e.pending())
	e.refresh()
	require.Equal(t, map[string]any{"orders": 2.0, "orders_30d": 1.0}, e.traits("u1"))
	require.Equal(t, []string{"buyer"}, e.tags("u1"))
	require.Nil(t, e.scores("u1"), "RFM is no longer configured: its scores are gone")
	require.NotContains(t, e.doc("u1"), "rfm")
	n := 0
	require.NoError(t, e.st.ScanRFM(e.ctx, func(store.RFMValue) { n++ }))
	require.Zero(t, n, "nor their raw values")
	ok, err := e.st.Setting(e.ctx, boundsKey, new(bounds))
	require.NoError(t, err)
	require.False(t, ok, "nor the boundaries")
	require.NoError(t, e.eng.Sync(e.ctx))
	require.Zero(t, e.pending())
}

// TestRunLoop: the background loop recomputes on Notify, scores the first
// purchasers, and follows the clock on its refresh tick.
func TestRunLoop(t *testing.T) {
	e := newEnv(t, tagConfig)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.eng.Run(ctx, RunOptions{Refresh: 10 * time.Millisecond, RFM: time.Hour}); close(done) }()
	defer func() { cancel(); <-done }()

	e.track(purchase("u1", 2000, t0.Add(-60*day)))
	require.NoError(t, e.eng.WaitCurrent(ctx))
	require.Equal(t, map[string]any{"r": 1.0, "f": 1.0, "m": 1.0}, e.scores("u1"), "the first purchaser is scored before WaitCurrent returns")
	require.Equal(t, []string{"big_spender"}, e.tags("u1"))

	e.clk.Advance(day)
	require.Eventually(t, func() bool { return slices.Contains(e.tags("u1"), "dormant") }, 5*time.Second, 5*time.Millisecond,
		"the refresh tick picks up the user whose days_since changed")
}

// TestRunRefreshesStaleQuintiles: quintiles older than the RFM period (by
// the store's clock) are recomputed when the loop starts.
func TestRunRefreshesStaleQuintiles(t *testing.T) {
	e := newEnv(t, rfmConfig)
	require.NoError(t, e.eng.Sync(e.ctx))
	e.track(purchase("a", 10, t0.Add(-time.Hour)))
	e.refresh()
	e.rfm()
	e.track(purchase("b", 20, t0.Add(-time.Hour)))
	e.refresh()
	require.Equal(t, 5.0, e.scores("b")["m"])
	require.Equal(t, 1.0, e.scores("a")["m"])

	stored := func() bounds {
		var b bounds
		_, err := e.st.Setting(e.ctx, boundsKey, &b)
		require.NoError(t, err)
		return b
	}
	run := func(until func() bool) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { e.eng.Run(ctx, RunOptions{Refresh: time.Hour, RFM: time.Hour}); close(done) }()
		require.NoError(t, e.eng.WaitCurrent(ctx))
		require.Eventually(t, until, 5*time.Second, 5*time.Millisecond)
		cancel()
		<-done
	}
	run(func() bool { time.Sleep(50 * time.Millisecond); return true })
	require.Equal(t, 1, stored().N, "quintiles are fresh by the store clock: not recomputed")

	e.clk.Advance(2 * time.Hour)
	run(func() bool { return stored().N == 2 && e.scores("b")["m"] == 3.0 })
	require.Equal(t, e.clk.Now().UnixMilli(), stored().At, "stale quintiles are recomputed on start")
	require.Equal(t, 3.0, e.scores("b")["m"], "rescored: 5 against the old boundaries, 3 of 5 among two purchasers")
}

func TestUpdateOnDemand(t *testing.T) {
	e := newEnv(t, aggConfig)
	res := e.track(buy("u1", 5, "A", t0), buy("u2", 6, "B", t0))
	require.NoError(t, e.eng.Update(e.ctx, res.Touched))
	require.Equal(t, 1.0, e.traits("u1")["n_all"])
	require.Equal(t, 1.0, e.traits("u2")["n_all"])
	require.Zero(t, e.pending(), "an on-demand update clears the dirty marks")
	require.NoError(t, e.eng.Update(e.ctx, []int64{424242}), "unknown users are skipped")
}

// TestCaughtUpBeforeBacklog: the loop tells WaitCurrent callers their users
// are current as soon as no user is dirty, before working through a
// backlog of users due by time.
func TestCaughtUpBeforeBacklog(t *testing.T) {
	e := newEnv(t, aggConfig)
	var evs []ev
	for i := 0; i < 30; i++ {
		evs = append(evs, buy(fmt.Sprintf("u%02d", i), 1, "A", t0.Add(-time.Hour)))
	}
	e.track(evs...)
	e.refresh()
	e.clk.Advance(day) // all 30 are due (days_since)
	e.track(buy("fresh", 1, "A", e.clk.Now()))
	e.eng.PageSize = 10
	var pendingAtCatchUp []int64
	n, err := e.eng.refresh(e.ctx, func(uint64) error {
		pendingAtCatchUp = append(pendingAtCatchUp, e.pending())
		return nil
	}, nil)
	require.NoError(t, err)
	require.Equal(t, 31, n)
	require.Equal(t, int64(20), pendingAtCatchUp[0], "caught up after the dirty user and one page of the backlog")
	require.Equal(t, 1.0, e.traits("fresh")["n_all"])
	require.Zero(t, pendingAtCatchUp[len(pendingAtCatchUp)-1])
}

// TestRunKeepsUpWhileIngestionIsBehind: while accepted events wait to be
// stored the loop paces itself (ADR 037), but never stops: with ingestion
// behind all the time, every dirty user is still recomputed, page by page,
// to the same values.
func TestRunKeepsUpWhileIngestionIsBehind(t *testing.T) {
	e := newEnv(t, rfmConfig)
	e.eng.PageSize = 10
	for i := range 35 {
		e.track(purchase(fmt.Sprintf("p%02d", i), float64(10+i), t0))
	}
	var asked atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		e.eng.Run(ctx, RunOptions{Refresh: time.Hour, RFM: time.Hour, IngestBehind: func() bool { asked.Add(1); return true }})
		close(done)
	}()
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	require.NoError(t, e.eng.WaitCurrent(wctx))
	wcancel()
	cancel()
	<-done
	require.Positive(t, asked.Load(), "the loop asked whether ingestion was behind between its pages")
	require.Zero(t, e.pending())
	for i := range 35 {
		u := fmt.Sprintf("p%02d", i)
		require.Equal(t, 1.0, e.traits(u)["orders"])
		require.NotNil(t, e.scores(u)["m"], "every purchaser is scored")
	}
}
