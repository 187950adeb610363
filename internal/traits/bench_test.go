package traits

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/store"
)

const benchConfig = `
profile:
  attributes: {name: string, level: string}
  traits:
    orders_30d: {count: purchase, within: 30d}
    spend_90d: {sum: purchase.amount, within: 90d}
    top_order: {max: purchase.amount}
    last_order_amount: {last: purchase.amount}
    days_since_last_order: {days_since: purchase}
    app_opens_7d: {count: app_open, within: 7d}
  rfm: {event: purchase, amount: amount, window: 365d}
events:
  purchase: {amount: number}
tags:
  dormant: 'user.traits.days_since_last_order > 60'
  high_value: 'user.rfm.m >= 4'
  gold: 'user.level == "gold"'
`

const benchUsers = 10_000

// benchEnv is 10k users with 5 purchases and 3 app opens each over the
// last year (80k events), all computed and scored.
func benchEnv(b *testing.B) *env {
	b.Helper()
	e := newEnv(b, benchConfig)
	rng := rand.New(rand.NewPCG(1, 2))
	var batch []ev
	flush := func() {
		e.track(batch...)
		batch = batch[:0]
	}
	for u := 0; u < benchUsers; u++ {
		user := fmt.Sprintf("u%05d", u)
		for k := 0; k < 5; k++ {
			batch = append(batch, purchase(user, float64(rng.IntN(1000)), t0.Add(-time.Duration(rng.IntN(365*24))*time.Hour)))
		}
		for k := 0; k < 3; k++ {
			batch = append(batch, ev{user: user, name: "app_open", at: t0.Add(-time.Duration(rng.IntN(30*24)) * time.Hour)})
		}
		if len(batch) >= 4000 {
			flush()
		}
	}
	flush()
	require.Equal(b, benchUsers, e.refresh())
	e.rfm()
	return e
}

// BenchmarkRecomputeAll: every profile recomputed (what a definitions
// change costs, and about what a day of days_since costs).
func BenchmarkRecomputeAll(b *testing.B) {
	e := benchEnv(b)
	for b.Loop() {
		b.StopTimer()
		_, err := e.st.MarkAllDue(e.ctx)
		require.NoError(b, err)
		b.StartTimer()
		require.Equal(b, benchUsers, e.refresh())
	}
	b.ReportMetric(float64(benchUsers*b.N)/b.Elapsed().Seconds(), "users/s")
}

// BenchmarkIncremental: 1,000 new purchases by 1,000 users arrive, then
// the users they touched are recomputed; the other 9,000 cost nothing.
func BenchmarkIncremental(b *testing.B) {
	e := benchEnv(b)
	rng := rand.New(rand.NewPCG(3, 4))
	const perOp = 1000
	for b.Loop() {
		evs := make([]ev, perOp)
		for i := range evs {
			evs[i] = purchase(fmt.Sprintf("u%05d", rng.IntN(benchUsers)), float64(rng.IntN(500)), e.clk.Now().Add(-time.Duration(rng.IntN(3600))*time.Second))
		}
		e.track(evs...)
		n := e.refresh()
		require.LessOrEqual(b, n, perOp)
	}
	b.ReportMetric(float64(perOp*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkSlide: a day passes with no events; the users whose values
// change (every purchaser's days_since, windows that slid) are recomputed.
func BenchmarkSlide(b *testing.B) {
	e := benchEnv(b)
	users := 0
	for b.Loop() {
		e.clk.Advance(day)
		users += e.refresh()
	}
	b.ReportMetric(float64(users)/float64(b.N), "users/op")
	b.ReportMetric(float64(users)/b.Elapsed().Seconds(), "users/s")
}

// BenchmarkRFMQuintiles: boundaries over 10k purchasers and a rescoring.
func BenchmarkRFMQuintiles(b *testing.B) {
	e := benchEnv(b)
	for b.Loop() {
		require.NoError(b, e.eng.RefreshRFM(e.ctx))
	}
	var n int
	require.NoError(b, e.st.ScanRFM(e.ctx, func(store.RFMValue) { n++ }))
	require.Equal(b, benchUsers, n)
}
