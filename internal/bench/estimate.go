package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/huabu/huabu/examples"
	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/app"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/estimate"
	"github.com/huabu/huabu/internal/store"
)

// EstimateOptions configure the audience estimate benchmark.
type EstimateOptions struct {
	Users   int    // profiles in the store
	DataDir string // "" = a temporary directory; else kept, and reused when it has the profiles
	Runs    int    // estimates timed (default 3): the median is reported
	Out     io.Writer
}

// EstimateResult is what the estimate benchmark measured.
type EstimateResult struct {
	Users    int
	Seed     time.Duration // 0 when the store was reused
	Walls    []time.Duration
	Median   time.Duration
	Estimate *estimate.Result // the median run's
	Exact    *estimate.Result
}

// estimateCanvas is the win-back canvas's audience and channels.
const estimateCanvas = `
id: bench-winback
trigger:
  schedule: {cron: "0 10 * * MON", timezone: Asia/Shanghai}
audience: 'user.rfm.r <= 2 && user.rfm.m >= 4 && !("vip" in user.tags)'
entry: {reentry: "after 30d"}
steps:
  - id: coupon
    push: {channel: wecom.customer, text: "{{ .owner.name }}为您准备了回归礼包"}
  - id: nudge
    push: {channel: sms, template: SMS_WINBACK_A, params: {name: "{{ .user.name }}"}}
`

// Estimate seeds N profiles shaped like the example ones (attributes,
// tags, computed traits and RFM scores; one in twenty with an SMS today),
// then estimates the win-back audience Runs times with the default time
// budget and once exactly, and prints the lines.
func Estimate(ctx context.Context, opts EstimateOptions) (EstimateResult, error) {
	res := EstimateResult{Users: opts.Users}
	if opts.Runs <= 0 {
		opts.Runs = 3
	}
	dir := opts.DataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "huabu-bench-estimate-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	st, err := store.OpenSQLite(ctx, filepath.Join(dir, "huabu.db"))
	if err != nil {
		return res, err
	}
	defer st.Close()
	have, err := st.CountProfiles(ctx)
	if err != nil {
		return res, err
	}
	if have < int64(opts.Users) {
		start := time.Now()
		if err := seedShaped(ctx, st, int(have), opts.Users); err != nil {
			return res, err
		}
		res.Seed = time.Since(start)
		fmt.Fprintf(opts.Out, "seeded %d profiles in %s\n", opts.Users-int(have), res.Seed.Round(time.Millisecond))
	} else if have > int64(opts.Users) {
		return res, fmt.Errorf("%s holds %d profiles, more than --users %d", dir, have, opts.Users)
	}
	src, err := examples.FS.ReadFile("huabu.yaml")
	if err != nil {
		return res, err
	}
	cfg, err := config.Parse("huabu.yaml", "", src)
	if err != nil {
		return res, err
	}
	comp, err := cfg.Compiler()
	if err != nil {
		return res, err
	}
	plan, problems := comp.Compile("bench-winback.yaml", []byte(estimateCanvas))
	if problems.HasErrors() {
		return res, problems.Errors()
	}
	acts := &activities.Activities{Store: st, Compiler: comp, Policy: app.PolicyOf(cfg.Policy)}
	est := &estimate.Estimator{Store: st, Compiler: comp, Policy: acts}
	var runs []*estimate.Result
	for i := 0; i < opts.Runs; i++ {
		start := time.Now()
		r, err := est.Estimate(ctx, plan, estimate.Options{})
		if err != nil {
			return res, err
		}
		res.Walls = append(res.Walls, time.Since(start))
		runs = append(runs, r)
		fmt.Fprintf(opts.Out, "estimate %d: %s wall, %d of %d profiles evaluated, entering %s\n",
			i+1, res.Walls[i].Round(time.Millisecond), r.Evaluated, r.Profiles, r.Entering)
	}
	idx := make([]int, len(runs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return int(res.Walls[a] - res.Walls[b]) })
	mid := idx[len(idx)/2]
	res.Median, res.Estimate = res.Walls[mid], runs[mid]
	start := time.Now()
	if res.Exact, err = est.Estimate(ctx, plan, estimate.Options{Exact: true}); err != nil {
		return res, err
	}
	exactWall := time.Since(start)
	e := res.Estimate
	fmt.Fprintf(opts.Out, "median of %d: %s wall for %d profiles (%.1f%% evaluated)\n",
		opts.Runs, res.Median.Round(time.Millisecond), e.Profiles, 100*float64(e.Evaluated)/float64(max(e.Profiles, 1)))
	fmt.Fprintf(opts.Out, "exact count: %s wall; entering %d exactly vs %s estimated (off by %d)\n",
		exactWall.Round(time.Millisecond), res.Exact.Entering.N, e.Entering, abs(e.Entering.N-res.Exact.Entering.N))
	for i, ch := range e.Channels {
		fmt.Fprintf(opts.Out, "  %s: reachable %d (exact %d), capped now %d (exact %d)\n",
			ch.Channel, ch.Reach, res.Exact.Channels[i].Reach, ch.Capped, res.Exact.Channels[i].Capped)
	}
	return res, nil
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// seedShaped adds profiles from index from to n-1, shaped like the example
// ones; every twentieth had an SMS an hour ago.
func seedShaped(ctx context.Context, st *store.SQLite, from, n int) error {
	cities := []string{"上海", "北京", "杭州", "深圳", "成都", "南京", "武汉", "西安"}
	levels := []string{"普通", "银卡", "金卡", "钻石"}
	tags := []string{`["母婴"]`, `["母婴","勿扰"]`, `[]`, `["vip"]`, `["新客"]`}
	const batch = 5000
	ups := make([]store.ProfileUpdate, 0, batch)
	var touched []string
	flush := func() error {
		if _, err := st.UpsertProfiles(ctx, ups); err != nil {
			return err
		}
		ups = ups[:0]
		if len(touched) == 0 {
			return nil
		}
		uids, err := st.UIDs(ctx, touched)
		if err != nil {
			return err
		}
		list := make([]int64, 0, len(uids))
		for _, u := range uids {
			list = append(list, u)
		}
		touched = touched[:0]
		return st.RecordTouches(ctx, 0, "sms", list, time.Now().Add(-time.Hour))
	}
	for i := from; i < n; i++ {
		id := fmt.Sprintf("u%07d", i)
		phone := ""
		if i%10 != 0 {
			phone = fmt.Sprintf("138%08d", i)
		}
		doc := fmt.Sprintf(`{"name":"用户%d","phone":%q,"city":%q,"level":%q,"balance":%d.5,"birthday":"1987-02-%02d","owner":"staff%03d","wecom_external_userid":"wmEXT%07d","push_alias":%q,"email":"%s@example.com","tags":%s,"traits":{"orders_30d":%d,"spend_90d":%d.2,"last_order_amount":%d,"days_since_last_order":%d,"app_opens_7d":%d},"rfm":{"r":%d,"f":%d,"m":%d}}`,
			i, phone, cities[i%8], levels[i%4], i%5000, i%28+1, i%200, i, id, id, tags[i%5], i%3, i%900, i%500, i%400, i%9, i%5+1, (i/5)%5+1, (i/25)%5+1)
		ups = append(ups, store.ProfileUpdate{ID: id, Patch: []byte(doc)})
		if i%20 == 7 {
			touched = append(touched, id)
		}
		if len(ups) == batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if len(ups) > 0 {
		return flush()
	}
	return nil
}
