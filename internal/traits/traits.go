package traits

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/store"
)

// Store is what the engine needs from the store.
type Store interface {
	Traits(ctx context.Context, fn func(*store.TraitTx) error) error
	ScanRFM(ctx context.Context, fn func(store.RFMValue)) error
	MarkAllDue(ctx context.Context) (int64, error)
	Setting(ctx context.Context, key string, v any) (bool, error)
}

// Definition is one computed trait.
type Definition struct {
	Name     string
	Fn       string // count | sum | min | max | first | last | days_since
	Event    string
	Property string
	Window   time.Duration // 0: all time
}

// RFM is the RFM configuration.
type RFM struct {
	Event  string
	Amount string
	Window time.Duration
}

type tagRule struct {
	tag  string
	cond *canvases.Condition
}

// Engine recomputes traits, RFM scores and auto-tags.
type Engine struct {
	st      Store
	log     *slog.Logger
	defs    []Definition
	rfm     *RFM
	rules   []tagRule
	version string
	// PageSize is how many users one transaction recomputes.
	PageSize int

	wake      chan struct{}
	needRFM   atomic.Bool // quintiles are due
	noBounds  atomic.Bool // purchasers were left unscored: there are no quintiles yet
	mu        sync.Mutex
	requested uint64        // Notify calls so far
	done      uint64        // requests fully processed
	progress  chan struct{} // closed and replaced whenever done advances
}

const day = 24 * time.Hour

// algorithm is part of the definitions' version: bump it when the way values
// are computed changes, so stored values are recomputed once.
const algorithm = "2"

// New builds the engine of a config.
func New(cfg *config.Config, st Store, log *slog.Logger) (*Engine, error) {
	if log == nil {
		log = slog.Default()
	}
	e := &Engine{st: st, log: log, PageSize: 500, wake: make(chan struct{}, 1), progress: make(chan struct{})}
	names := make([]string, 0, len(cfg.Profile.Traits))
	for n := range cfg.Profile.Traits {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := cfg.Profile.Traits[n]
		fn, src, _ := t.Aggregation()
		ev, prop, _ := strings.Cut(src, ".")
		d := Definition{Name: n, Fn: fn, Event: ev, Property: prop}
		if t.Within != "" {
			w, err := canvases.ParseDuration(t.Within)
			if err != nil {
				return nil, fmt.Errorf("profile.traits.%s.within: %w", n, err)
			}
			d.Window = time.Duration(w)
		}
		e.defs = append(e.defs, d)
	}
	if r := cfg.Profile.RFM; r != nil {
		w := 365 * day
		if r.Window != "" {
			cw, err := canvases.ParseDuration(r.Window)
			if err != nil {
				return nil, fmt.Errorf("profile.rfm.window: %w", err)
			}
			w = time.Duration(cw)
		}
		e.rfm = &RFM{Event: r.Event, Amount: r.Amount, Window: w}
	}
	if len(cfg.Tags) > 0 {
		comp, err := cfg.Compiler()
		if err != nil {
			return nil, err
		}
		tags := make([]string, 0, len(cfg.Tags))
		for t := range cfg.Tags {
			tags = append(tags, t)
		}
		sort.Strings(tags)
		for _, t := range tags {
			c, err := comp.CompileCondition(cfg.Tags[t], "")
			if err != nil {
				return nil, fmt.Errorf("tags.%s: %w", t, err)
			}
			e.rules = append(e.rules, tagRule{tag: t, cond: c})
		}
	}
	raw, _ := json.Marshal(struct {
		A    string
		Defs []Definition
		RFM  *RFM
		Tags map[string]string
	}{algorithm, e.defs, e.rfm, cfg.Tags})
	sum := sha256.Sum256(raw)
	e.version = hex.EncodeToString(sum[:8])
	return e, nil
}

// Enabled reports whether there is anything to compute: without traits,
// RFM or tag rules, ingestion need not mark users due at all.
func (e *Engine) Enabled() bool { return len(e.defs) > 0 || e.rfm != nil || len(e.rules) > 0 }

// Definitions are the computed traits, by name.
func (e *Engine) Definitions() []Definition { return e.defs }

const versionKey = "traits.version"

// Sync marks every profile due once when the definitions differ from those
// the stored values were computed with.
func (e *Engine) Sync(ctx context.Context) error {
	if !e.Enabled() {
		return nil
	}
	var stored string
	if _, err := e.st.Setting(ctx, versionKey, &stored); err != nil {
		return err
	}
	if stored == e.version {
		return nil
	}
	n, err := e.st.MarkAllDue(ctx)
	if err != nil {
		return err
	}
	if stored != "" {
		e.log.Info("trait definitions changed; recomputing every profile", "profiles", n)
	}
	e.needRFM.Store(e.rfm != nil)
	return e.st.Traits(ctx, func(tx *store.TraitTx) error {
		if e.rfm == nil {
			// RFM was dropped from the config: its raw values and boundaries
			// go (the recomputation removes the scores from documents).
			if err := tx.ClearRFM(); err != nil {
				return err
			}
			if err := tx.DeleteSetting(boundsKey); err != nil {
				return err
			}
		}
		return tx.SetSetting(versionKey, e.version)
	})
}

// Notify tells the loop that users were marked due; it never blocks.
func (e *Engine) Notify() {
	e.mu.Lock()
	e.requested++
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// WaitCurrent waits until the users marked due before the call have been
// recomputed by the loop (Run must be running), e.g. so an event trigger
// evaluates conditions over traits that include the triggering event.
func (e *Engine) WaitCurrent(ctx context.Context) error {
	e.Notify()
	e.mu.Lock()
	target := e.requested
	e.mu.Unlock()
	for {
		e.mu.Lock()
		done, ch := e.done, e.progress
		e.mu.Unlock()
		if done >= target {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// RunOptions set the loop's periods.
type RunOptions struct {
	Refresh time.Duration // how often windows are checked for expiry (default 1m)
	RFM     time.Duration // how often RFM quintiles are recomputed (default 1h)
	// IngestBehind, when set, reports whether accepted events are waiting
	// to be stored. While they are, the loop leaves the store's writer to
	// them for most of the time (ADR 037): it waits IngestShare's inverse
	// minus one times as long as its last page took before the next one.
	IngestBehind func() bool
}

// ingestShare is how many times as long as a page of recomputation took
// the loop waits before the next page while ingestion is behind: the
// engine then has at least a fifth of the writer, never none (its work
// only grows with the backlog's users), and users dirtied again while it
// waits are recomputed once, not once per stored group.
const ingestShare = 4

// Run recomputes due users whenever Notify is called and every Refresh,
// and RFM quintiles every RFM period, until ctx ends. It is what the worker
// runs in the background; errors are logged and retried on the next tick.
func (e *Engine) Run(ctx context.Context, opts RunOptions) {
	if opts.Refresh <= 0 {
		opts.Refresh = time.Minute
	}
	if opts.RFM <= 0 {
		opts.RFM = time.Hour
	}
	if err := e.Sync(ctx); err != nil && ctx.Err() == nil {
		e.log.Error("traits: sync definitions", "err", err)
	}
	if e.rfm != nil {
		// Boundaries older than the period (by the store's clock, which
		// every other time in this package comes from) are recomputed now.
		err := e.st.Traits(ctx, func(tx *store.TraitTx) error {
			b, err := loadBounds(tx)
			if err == nil && (b == nil || time.Duration(tx.Now()-b.At)*time.Millisecond >= opts.RFM) {
				e.needRFM.Store(true)
			}
			return err
		})
		if err != nil && ctx.Err() == nil {
			e.log.Error("traits: rfm quintiles", "err", err)
			e.needRFM.Store(true)
		}
	}
	refresh := time.NewTicker(opts.Refresh)
	defer refresh.Stop()
	rfm := time.NewTicker(opts.RFM)
	defer rfm.Stop()
	// caughtUp runs whenever no user is dirty any more, before the users
	// due by time (a backlog of those must not hold up WaitCurrent).
	caughtUp := func(target uint64) error {
		if e.noBounds.Swap(false) {
			// The first purchasers: score them before callers of WaitCurrent
			// look (later quintile updates run after, off that path).
			if err := e.RefreshRFM(ctx); err != nil {
				e.noBounds.Store(true)
				return err
			}
		}
		e.mu.Lock()
		if target > e.done {
			e.done = target
			close(e.progress)
			e.progress = make(chan struct{})
		}
		e.mu.Unlock()
		return nil
	}
	var pace func(took time.Duration)
	if opts.IngestBehind != nil {
		pace = func(took time.Duration) {
			deadline := time.Now().Add(ingestShare * took)
			for opts.IngestBehind() && time.Now().Before(deadline) {
				select {
				case <-ctx.Done():
					return
				case <-time.After(min(5*time.Millisecond, time.Until(deadline))):
				}
			}
		}
	}
	for {
		if _, err := e.refresh(ctx, caughtUp, pace); err != nil {
			if ctx.Err() != nil {
				return
			}
			e.log.Error("traits: refresh", "err", err)
		}
		if e.needRFM.Load() {
			if err := e.RefreshRFM(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("traits: rfm quintiles", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-refresh.C:
		case <-rfm.C:
			e.needRFM.Store(e.rfm != nil)
		}
	}
}

// RefreshDue recomputes every user whose traits are due now (new events,
// or a window that slid), page by page; it returns how many it recomputed.
func (e *Engine) RefreshDue(ctx context.Context) (int, error) {
	return e.refresh(ctx, nil, nil)
}

// refresh is RefreshDue; caughtUp, when set, is called after each page that
// found no dirty user, with the Notify count read before that page: every
// user marked dirty before those Notify calls has then been recomputed.
// pace, when set, is called after each page with how long it took.
func (e *Engine) refresh(ctx context.Context, caughtUp func(target uint64) error, pace func(took time.Duration)) (int, error) {
	total := 0
	for {
		start := time.Now()
		var target uint64
		if caughtUp != nil {
			e.mu.Lock()
			target = e.requested
			e.mu.Unlock()
		}
		n, clean := 0, false
		err := e.st.Traits(ctx, func(tx *store.TraitTx) error {
			uids, err := tx.Dirty(e.PageSize)
			if err == nil && len(uids) == 0 {
				clean = true
				uids, err = tx.Due(tx.Now(), e.PageSize)
			}
			if err != nil || len(uids) == 0 {
				return err
			}
			n = len(uids)
			return e.recompute(tx, uids)
		})
		if err != nil {
			return total, err
		}
		total += n
		if clean && caughtUp != nil {
			if err := caughtUp(target); err != nil {
				return total, err
			}
		}
		if n == 0 {
			return total, nil
		}
		if pace != nil {
			pace(time.Since(start))
		}
	}
}

// Update recomputes the given users now (on demand).
func (e *Engine) Update(ctx context.Context, uids []int64) error {
	for len(uids) > 0 {
		page := uids[:min(len(uids), e.PageSize)]
		uids = uids[len(page):]
		if err := e.st.Traits(ctx, func(tx *store.TraitTx) error { return e.recompute(tx, page) }); err != nil {
			return err
		}
	}
	return nil
}

// plan is the aggregates of one recomputation and where each definition's
// values are among them.
type plan struct {
	aggs   []store.Aggregate
	value  []int // per definition: its value aggregate
	expiry []int // per definition: the oldest event in its window (-1: none)
	rfm    struct{ last, count, sum, oldest int }
}

func (e *Engine) plan(now int64) plan {
	var p plan
	index := map[store.Aggregate]int{}
	add := func(a store.Aggregate) int {
		if i, ok := index[a]; ok {
			return i
		}
		index[a] = len(p.aggs)
		p.aggs = append(p.aggs, a)
		return len(p.aggs) - 1
	}
	since := func(w time.Duration) int64 {
		if w <= 0 {
			return 0
		}
		// Events at exactly now-w have left the window.
		return now - w.Milliseconds() + 1
	}
	for _, d := range e.defs {
		s := since(d.Window)
		switch d.Fn {
		case "count":
			p.value = append(p.value, add(store.Aggregate{Fn: "count", Event: d.Event, Since: s}))
		case "days_since":
			p.value = append(p.value, add(store.Aggregate{Fn: "last_ts", Event: d.Event, Since: s}))
		default:
			p.value = append(p.value, add(store.Aggregate{Fn: d.Fn, Event: d.Event, Path: jsonPath(d.Property), Since: s}))
		}
		if d.Window > 0 {
			p.expiry = append(p.expiry, add(store.Aggregate{Fn: "first_ts", Event: d.Event, Since: s}))
		} else {
			p.expiry = append(p.expiry, -1)
		}
	}
	if r := e.rfm; r != nil {
		s := since(r.Window)
		p.rfm.last = add(store.Aggregate{Fn: "last_ts", Event: r.Event, Since: s})
		p.rfm.count = add(store.Aggregate{Fn: "count", Event: r.Event, Since: s})
		p.rfm.sum = add(store.Aggregate{Fn: "sum", Event: r.Event, Path: jsonPath(r.Amount), Since: s})
		p.rfm.oldest = add(store.Aggregate{Fn: "first_ts", Event: r.Event, Since: s})
	}
	return p
}

// jsonPath quotes a property name for SQLite's JSON functions.
func jsonPath(prop string) string {
	return `$."` + strings.ReplaceAll(prop, `"`, `\"`) + `"`
}

// recompute computes the traits, RFM and tags of uids and writes what changed.
func (e *Engine) recompute(tx *store.TraitTx, uids []int64) error {
	now := tx.Now()
	docs, err := tx.Docs(uids)
	if err != nil {
		return err
	}
	p := e.plan(now)
	vals, err := tx.Aggregates(uids, p.aggs)
	if err != nil {
		return err
	}
	var b *bounds
	if e.rfm != nil {
		if b, err = loadBounds(tx); err != nil {
			return err
		}
	}
	found := make(map[int64]bool, len(docs))
	var writes []store.DocWrite
	var dues []store.Due
	var rfmSet []store.RFMValue
	var rfmRemove []int64
	for _, row := range docs {
		found[row.UID] = true
		v := vals[row.UID]
		traits := make(map[string]any, len(e.defs))
		next := int64(math.MaxInt64)
		for i, d := range e.defs {
			val := v[p.value[i]]
			switch d.Fn {
			case "count", "sum":
				f, _ := number(val)
				traits[d.Name] = f
			case "min", "max":
				if f, ok := number(val); ok {
					traits[d.Name] = f
				}
			case "first", "last":
				if s, ok := val.(string); ok {
					var x any
					if json.Unmarshal([]byte(s), &x) == nil && x != nil {
						traits[d.Name] = x
					}
				}
			case "days_since":
				if last, ok := val.(int64); ok {
					days := max(0, (now-last)/day.Milliseconds())
					traits[d.Name] = float64(days)
					next = min(next, last+(days+1)*day.Milliseconds())
				}
			}
			if p.expiry[i] >= 0 {
				if oldest, ok := v[p.expiry[i]].(int64); ok {
					next = min(next, oldest+d.Window.Milliseconds())
				}
			}
		}
		var rfm map[string]any
		if r := e.rfm; r != nil {
			last, ok := v[p.rfm.last].(int64)
			if ok {
				f, _ := number(v[p.rfm.count])
				m, _ := number(v[p.rfm.sum])
				raw := store.RFMValue{UID: row.UID, LastTS: last, Frequency: int64(f), Monetary: m}
				rfmSet = append(rfmSet, raw)
				if b != nil {
					rfm = b.score(raw)
				} else {
					e.noBounds.Store(true) // the first purchasers: quintiles come with the next RefreshRFM
				}
				if oldest, ok := v[p.rfm.oldest].(int64); ok {
					next = min(next, oldest+r.Window.Milliseconds())
				}
			} else {
				rfmRemove = append(rfmRemove, row.UID)
			}
		}
		doc, changed, err := e.apply(row.Doc, traits, rfm, true)
		if err != nil {
			e.log.Warn("traits: profile document is not a JSON object; left as it is", "uid", row.UID, "err", err)
		} else if changed {
			writes = append(writes, store.DocWrite{UID: row.UID, Doc: doc})
		}
		if next == math.MaxInt64 {
			dues = append(dues, store.Due{UID: row.UID, At: -1})
		} else {
			dues = append(dues, store.Due{UID: row.UID, At: next})
		}
	}
	for _, uid := range uids {
		if !found[uid] {
			dues = append(dues, store.Due{UID: uid, At: -1})
		}
	}
	if err := tx.WriteDocs(writes); err != nil {
		return err
	}
	if err := tx.SetRFM(rfmSet, rfmRemove); err != nil {
		return err
	}
	return tx.SetDue(dues)
}

// apply sets traits (and rfm, when managed: nil removes the scores) in a
// user document and re-evaluates the tag rules; it reports whether anything
// changed.
func (e *Engine) apply(raw []byte, traits map[string]any, rfm map[string]any, manageRFM bool) ([]byte, bool, error) {
	// Numbers are decoded as json.Number so attributes are written back
	// exactly as they came (a float64 round trip would change integers
	// beyond 2^53, such as member numbers); the values Huabu computes are
	// plain float64, and compared as such.
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, false, err
	}
	if doc == nil {
		return nil, false, fmt.Errorf("null document")
	}
	for _, k := range []string{"traits", "rfm"} {
		if v, ok := doc[k]; ok {
			doc[k] = floats(v)
		}
	}
	changed := false
	if traits != nil && (len(e.defs) > 0 || doc["traits"] != nil) {
		if old, _ := doc["traits"].(map[string]any); !reflect.DeepEqual(old, traits) {
			doc["traits"] = traits
			changed = true
		}
	}
	if manageRFM {
		old, had := doc["rfm"]
		switch {
		case rfm == nil && had:
			delete(doc, "rfm")
			changed = true
		case rfm != nil && !reflect.DeepEqual(old, rfm):
			doc["rfm"] = rfm
			changed = true
		}
	}
	if e.retag(doc) {
		changed = true
	}
	if !changed {
		return raw, false, nil
	}
	out, err := json.Marshal(doc)
	return out, true, err
}

// retag evaluates the rules over doc and edits its tags.
func (e *Engine) retag(doc map[string]any) bool {
	if len(e.rules) == 0 {
		return false
	}
	var tags []any
	if l, ok := doc["tags"].([]any); ok {
		tags = l
	}
	changed := false
	for _, r := range e.rules {
		on, err := r.cond.Eval(doc, nil)
		if err != nil {
			continue // a rule that cannot be evaluated for this user changes nothing
		}
		i := slices.Index(tags, any(r.tag))
		switch {
		case on && i < 0:
			tags = append(tags, r.tag)
			changed = true
		case !on && i >= 0:
			tags = slices.DeleteFunc(tags, func(t any) bool { return t == any(r.tag) })
			changed = true
		}
	}
	if changed {
		if tags == nil {
			tags = []any{}
		}
		doc["tags"] = tags
	}
	return changed
}

// floats replaces json.Numbers by float64 in a decoded JSON value.
func floats(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return x
		}
		return f
	case map[string]any:
		for k, y := range x {
			x[k] = floats(y)
		}
	case []any:
		for i, y := range x {
			x[i] = floats(y)
		}
	}
	return v
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}
