package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/huabu/huabu/examples"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/simulate"
)

// SimulateOptions configure the simulation benchmark.
type SimulateOptions struct {
	Users  int
	Days   int
	Canvas string // an example canvas id (default winback-dormant)
	Runs   int    // simulations timed (default 3): the median is reported
	Out    io.Writer
}

// SimulateResult is what the simulation benchmark measured.
type SimulateResult struct {
	Walls  []time.Duration
	Median time.Duration
	Result *simulate.Result // the last run's
}

// Simulate generates Users profiles shaped like the example ones (every
// fifth a lapsed big spender, so the win-back audience is large), a year
// of purchase history, and over the simulated Days the events a live
// fortnight has — coupons used, purchases, app opens, carts — then
// simulates an example canvas over them Runs times and prints each wall
// time and the median.
func Simulate(ctx context.Context, opts SimulateOptions) (SimulateResult, error) {
	var res SimulateResult
	if opts.Runs <= 0 {
		opts.Runs = 3
	}
	if opts.Canvas == "" {
		opts.Canvas = "winback-dormant"
	}
	src, err := examples.FS.ReadFile("huabu.yaml")
	if err != nil {
		return res, err
	}
	cfg, err := config.Parse("huabu.yaml", "", src)
	if err != nil {
		return res, err
	}
	canvas, err := examples.FS.ReadFile("canvases/" + opts.Canvas + ".yaml")
	if err != nil {
		return res, fmt.Errorf("no example canvas %q", opts.Canvas)
	}
	from := time.Date(2026, 11, 23, 0, 0, 0, 0, time.FixedZone("CST", 8*3600))
	profiles, staff, events := simulationInput(opts.Users, from, opts.Days)
	fmt.Fprintf(opts.Out, "%d profiles, %d events (history and the %d days), canvas %s\n", opts.Users, bytes.Count(events, []byte("\n")), opts.Days, opts.Canvas)
	for i := 0; i < opts.Runs; i++ {
		start := time.Now()
		r, err := simulate.Run(ctx, simulate.Options{
			Config: cfg, File: opts.Canvas + ".yaml", Source: canvas, From: from, For: time.Duration(opts.Days) * 24 * time.Hour,
			Profiles: bytes.NewReader(profiles), Staff: bytes.NewReader(staff), Events: bytes.NewReader(events),
		})
		if err != nil {
			return res, err
		}
		wall := time.Since(start)
		res.Walls, res.Result = append(res.Walls, wall), r
		var entered int64
		for _, f := range r.Steps {
			entered += f.Entered
		}
		fmt.Fprintf(opts.Out, "simulation %d: %s wall; %d run(s), %d users on a path, %d step passages, %d events replayed\n",
			i+1, wall.Round(time.Millisecond), len(r.Runs), len(r.Users), entered, r.Replayed)
	}
	sorted := slices.Clone(res.Walls)
	slices.Sort(sorted)
	res.Median = sorted[len(sorted)/2]
	fmt.Fprintf(opts.Out, "median of %d: %s for %d users × %d days\n", opts.Runs, res.Median.Round(time.Millisecond), opts.Users, opts.Days)
	return res, nil
}

// simulationInput makes the benchmark's profiles, staff directory and
// events (history before from, then the period's).
func simulationInput(users int, from time.Time, days int) (profiles, staff, events []byte) {
	rng := rand.New(rand.NewPCG(17, 17))
	owners := []string{"zhangwei", "lina", "wangfang", "liuyang"}
	for _, o := range owners {
		staff = fmt.Appendf(staff, `{"userid":%q,"name":"顾问%s","grid":"一网格","leader":"zhaolei"}`+"\n", o, o)
	}
	staff = append(staff, `{"userid":"zhaolei","name":"赵磊","grid":"一网格"}`+"\n"...)
	levels := []string{"普通", "银卡", "金卡", "钻石"}
	msg := 0
	event := func(user, name, props string, at time.Time) {
		msg++
		events = fmt.Appendf(events, `{"userId":%q,"event":%q,"properties":%s,"timestamp":%q,"messageId":"b-%d"}`+"\n",
			user, name, props, at.Format(time.RFC3339), msg)
	}
	period := time.Duration(days) * 24 * time.Hour
	for i := 0; i < users; i++ {
		id := fmt.Sprintf("u%06d", i)
		profiles = fmt.Appendf(profiles, `{"type":"identify","userId":%q,"traits":{"name":"用户%d","phone":"138%08d","level":%q,"owner":%q,"wecom_external_userid":"wm%06d","push_alias":%q,"tags":[]}}`+"\n",
			id, i, i, levels[i%4], owners[i%len(owners)], i, id)
		// History: big spenders who lapsed half a year ago (every fifth),
		// the others small and recent.
		lapsed := i%5 == 0
		for k := 0; k < 3; k++ {
			ago := time.Duration(10+rng.IntN(60)) * 24 * time.Hour
			amount := 50 + rng.IntN(150)
			if lapsed {
				ago, amount = time.Duration(150+rng.IntN(150))*24*time.Hour, 1500+rng.IntN(1500)
			}
			event(id, "purchase", fmt.Sprintf(`{"amount":%d,"order_id":"h-%d-%d"}`, amount, i, k), from.Add(-ago))
		}
		// The period: some use the coupon, some buy, many open the app.
		at := func() time.Time { return from.Add(time.Duration(rng.Int64N(int64(period)))) }
		switch r := rng.IntN(10); {
		case r < 2:
			event(id, "coupon_used", `{"coupon":"WB"}`, at())
		case r < 3:
			event(id, "purchase", fmt.Sprintf(`{"amount":%d,"order_id":"p-%d"}`, 100+rng.IntN(900), i), at())
		}
		if rng.IntN(2) == 0 {
			event(id, "app_open", `{}`, at())
		}
	}
	return profiles, staff, events
}
