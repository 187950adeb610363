package ingest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/huabu/huabu/internal/acceptlog"
	"github.com/huabu/huabu/internal/store"
)

// The accept log between the API and the store (ADR 006): the API appends
// each validated request to the log and answers once it is synced; the
// Applier stores the log's records in order, many requests per
// transaction, together with the position it reached.

// ErrOverloaded: the accept log's backlog is full (the store is far
// behind); the API answers 503 with Retry-After, and Segment clients retry.
var ErrOverloaded = errors.New("the ingestion backlog is full")

// Accepter is an EventStore that appends requests to the accept log.
type Accepter struct {
	Log *acceptlog.Log
}

// Ingest appends the request as one record; it returns once the record is
// on disk. The result is Deferred: the Applier stores it.
func (a *Accepter) Ingest(ctx context.Context, msgs []store.Message, opts store.IngestOptions) (store.IngestResult, error) {
	if err := ctx.Err(); err != nil {
		return store.IngestResult{}, err
	}
	if opts.ReceivedAt.IsZero() {
		opts.ReceivedAt = time.Now()
	}
	err := a.Log.Append(encodeRecord(msgs, opts))
	if errors.Is(err, acceptlog.ErrFull) {
		return store.IngestResult{}, ErrOverloaded
	}
	if err != nil {
		return store.IngestResult{}, err
	}
	return store.IngestResult{Deferred: true}, nil
}

// Record layout, version 1: version byte, flags byte (1 realtime, 2 mark
// due), received-at unix ms (varint), message count (uvarint), then per
// message its type, messageId, userId, anonymousId, previousId, name and
// properties as uvarint-length-prefixed bytes and its timestamp in unix ms
// (varint).
const recordVersion = 1

func encodeRecord(msgs []store.Message, opts store.IngestOptions) []byte {
	size := 32
	for _, m := range msgs {
		size += 6*2 + 10 + len(m.Type) + len(m.MessageID) + len(m.UserID) + len(m.AnonymousID) + len(m.PreviousID) + len(m.Name) + len(m.Properties)
	}
	b := make([]byte, 0, size)
	var flags byte
	if opts.Realtime {
		flags |= 1
	}
	if opts.MarkDue {
		flags |= 2
	}
	b = append(b, recordVersion, flags)
	b = binary.AppendVarint(b, opts.ReceivedAt.UnixMilli())
	b = binary.AppendUvarint(b, uint64(len(msgs)))
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, m := range msgs {
		str(m.Type)
		str(m.MessageID)
		str(m.UserID)
		str(m.AnonymousID)
		str(m.PreviousID)
		str(m.Name)
		b = binary.AppendUvarint(b, uint64(len(m.Properties)))
		b = append(b, m.Properties...)
		b = binary.AppendVarint(b, m.Timestamp.UnixMilli())
	}
	return b
}

var errBadRecord = errors.New("malformed accept-log record")

func decodeRecord(b []byte) (store.IngestRequest, error) {
	var req store.IngestRequest
	if len(b) < 2 || b[0] != recordVersion {
		return req, errBadRecord
	}
	flags := b[1]
	b = b[2:]
	varint := func() int64 {
		v, n := binary.Varint(b)
		if n <= 0 {
			b = nil
			return 0
		}
		b = b[n:]
		return v
	}
	bytesOf := func() []byte {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			b = nil
			return nil
		}
		v := b[n : n+int(l)]
		b = b[n+int(l):]
		return v
	}
	received := varint()
	count, n := binary.Uvarint(b)
	if n <= 0 || count > uint64(len(b)) {
		return req, errBadRecord
	}
	b = b[n:]
	req.Options = store.IngestOptions{Realtime: flags&1 != 0, MarkDue: flags&2 != 0, ReceivedAt: time.UnixMilli(received)}
	req.Messages = make([]store.Message, count)
	for i := range req.Messages {
		m := &req.Messages[i]
		m.Type = string(bytesOf())
		m.MessageID = string(bytesOf())
		m.UserID = string(bytesOf())
		m.AnonymousID = string(bytesOf())
		m.PreviousID = string(bytesOf())
		m.Name = string(bytesOf())
		if p := bytesOf(); len(p) > 0 {
			m.Properties = p
		}
		m.Timestamp = time.UnixMilli(varint())
		if b == nil {
			return req, errBadRecord
		}
	}
	if len(b) != 0 {
		return req, errBadRecord
	}
	return req, nil
}

// AppliedKey is the store setting holding the log position applied so far,
// for a store with one accept log (SQLite: the log lives beside the file).
const AppliedKey = "acceptlog.applied"

// AppliedKeyOf is the setting of one worker's accept log when several
// workers, each with its own log, share the store (PostgreSQL): positions
// are offsets in one log, meaningless in another's — a worker resuming from
// another's position would skip (and delete) records it never stored.
func AppliedKeyOf(worker string) string { return AppliedKey + "/" + worker }

// ApplyStore is what the Applier writes.
type ApplyStore interface {
	IngestAll(ctx context.Context, reqs []store.IngestRequest, key string, value any) ([]store.IngestResult, []error, error)
	Setting(ctx context.Context, key string, v any) (bool, error)
}

// ApplierOptions configure an Applier.
type ApplierOptions struct {
	Log   *acceptlog.Log
	Store ApplyStore
	// Applied is called after each transaction with what it stored: the
	// engine tells the traits engine and pokes the event feed.
	Applied func(results []store.IngestResult)
	// FailedDir keeps records that cannot be stored (each file is the
	// record; the log says why), so nothing accepted disappears silently.
	FailedDir string
	Logger    *slog.Logger
	// Key is the store setting holding this log's applied position
	// (empty: AppliedKey). Every accept log on a store needs its own.
	Key string
	// BehindGroup is the most messages one transaction stores while the
	// applier is behind (0: applyGroupMessages, groups never grow). See
	// nextGroup (ADR 038).
	BehindGroup int
	// BehindGroupTime is how long a grown group may hold the writer, by the
	// last group's time per message (0: behindGroupTime).
	BehindGroupTime time.Duration
	// Gather is how long the applier, woken from idle by a new record,
	// lets more records arrive before it stores them (0: none): one
	// transaction for what a steady stream of small requests brings in that
	// time, instead of one per accept-log sync (ADR 056).
	Gather time.Duration
}

// applyGroupMessages bounds one transaction while the applier keeps up, so
// the writer is not held long and stored events reach the router in steady
// steps.
const applyGroupMessages = 8000

// behindGroupTime is how long a transaction of a group grown while behind
// may hold the writer, by the last group's time per message: other writers
// (runs, the router, the traits engine) wait at most about this long, and
// take their turn between groups (the writer pool hands the connection to
// a waiting transaction when the applier commits).
const behindGroupTime = 500 * time.Millisecond

// BehindGroupMessages is the largest group the app lets a SQLite applier
// grow to (ApplierOptions.BehindGroup): up to four times fewer commits
// per event, each writing the index pages a group dirtied once — a quarter less
// CPU per event stored than groups of 8,000 (docs/performance.md, session 6).
const BehindGroupMessages = 32000

// Applier stores the accept log's records.
type Applier struct {
	opts ApplierOptions
	log  *slog.Logger

	mu  sync.Mutex // pos is written by the applying goroutine, read by waiters
	pos acceptlog.Position

	group int // messages the next group may hold (nextGroup), applying goroutine only
	// behind: the last group was full, so more records wait (applying
	// goroutine only).
	behind bool

	applied, duplicates prometheus.Counter
	transactions        prometheus.Counter
	committed           atomic.Int64 // transactions, for Transactions
	backlog             prometheus.GaugeFunc
	failures            prometheus.Counter
}

// NewApplier loads the applied position and releases what is before it.
func NewApplier(ctx context.Context, opts ApplierOptions) (*Applier, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Key == "" {
		opts.Key = AppliedKey
	}
	a := &Applier{opts: opts, log: opts.Logger}
	found, err := opts.Store.Setting(ctx, opts.Key, &a.pos)
	if err != nil {
		return nil, fmt.Errorf("accept log position: %w", err)
	}
	if end := opts.Log.End(); found && end.Before(a.pos) {
		// The log directory was replaced (restored, deleted): what it holds
		// now was never applied.
		a.log.Warn("the accept log is behind the applied position; applying it from its start", "applied", a.pos, "log_end", end)
		a.pos = acceptlog.Position{}
	}
	if start := opts.Log.Start(); a.pos.Before(start) {
		a.pos = start
	}
	if err := opts.Log.Release(a.pos); err != nil {
		a.log.Warn("removing applied accept-log segments", "err", err)
	}
	a.applied = prometheus.NewCounter(prometheus.CounterOpts{Name: "huabu_ingest_applied_messages_total", Help: "Messages the accept log's applier stored."})
	a.transactions = prometheus.NewCounter(prometheus.CounterOpts{Name: "huabu_ingest_applied_transactions_total", Help: "Store transactions the accept log's applier committed (groups of requests)."})
	a.duplicates = prometheus.NewCounter(prometheus.CounterOpts{Name: "huabu_ingest_duplicate_messages_total", Help: "Messages the applier skipped because their messageId was stored already."})
	a.failures = prometheus.NewCounter(prometheus.CounterOpts{Name: "huabu_ingest_failed_records_total", Help: "Accept-log records that could not be stored (kept in the failed directory)."})
	a.backlog = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "huabu_ingest_backlog_bytes", Help: "Bytes accepted into the accept log and not yet stored."}, func() float64 { return float64(opts.Log.Backlog()) })
	return a, nil
}

// Collectors are the applier's metrics.
func (a *Applier) Collectors() []prometheus.Collector {
	return []prometheus.Collector{a.applied, a.transactions, a.duplicates, a.failures, a.backlog}
}

// Run applies records as they are appended until ctx ends. While it keeps
// up, each group gathers for opts.Gather first (ADR 056): after an idle
// moment, and after a group that was not full — the records that arrived
// while a group was being stored wait for the next group's gathering
// instead of making a small group of their own. While behind (the last
// group was full) it stores group after group without waiting.
func (a *Applier) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	failures := 0
	for ctx.Err() == nil {
		n, err := a.applyGroup(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			a.log.Error("storing accepted requests", "at", a.pos, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(time.Duration(failures)*200*time.Millisecond, 5*time.Second)):
			}
			continue
		}
		failures = 0
		if n > 0 {
			if !a.behind && !a.gather(ctx) {
				return
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-a.opts.Log.Appended():
			if !a.gather(ctx) {
				return
			}
		case <-tick.C:
		}
	}
}

// gather waits opts.Gather, or until ctx ends (false).
func (a *Applier) gather(ctx context.Context) bool {
	if a.opts.Gather <= 0 {
		return true
	}
	t := time.NewTimer(a.opts.Gather)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// ApplyAvailable stores every record synced so far, a group per
// transaction, and returns how many messages it stored or skipped.
func (a *Applier) ApplyAvailable(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := a.applyGroup(ctx)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

// nextGroup sizes the group after one of messages that took took: while
// the applier is behind (the group was full, so more records wait) the next
// one grows to what behindGroupTime fits at the rate just measured, up to
// opts.BehindGroup; once it has caught up, groups are applyGroupMessages
// again. A burst thus starts with groups of the usual size and grows them
// only while it lasts; a steady stream the applier keeps up with is
// unaffected.
func (a *Applier) nextGroup(limit, messages int, took time.Duration) int {
	if messages < limit || a.opts.BehindGroup <= applyGroupMessages {
		return applyGroupMessages
	}
	budget := a.opts.BehindGroupTime
	if budget <= 0 {
		budget = behindGroupTime
	}
	fits := a.opts.BehindGroup
	if took > 0 {
		fits = int(min(float64(messages)*float64(budget)/float64(took), float64(a.opts.BehindGroup)))
	}
	return min(max(fits, applyGroupMessages), a.opts.BehindGroup)
}

// applyGroup stores the next group of records.
func (a *Applier) applyGroup(ctx context.Context) (int, error) {
	var reqs []store.IngestRequest
	var raws []acceptlog.Record
	messages := 0
	start := a.Position()
	pos := start
	limit := a.group
	if limit <= 0 {
		limit = applyGroupMessages
	}
	for messages < limit {
		recs, err := a.opts.Log.Read(pos, 2<<20)
		var ce *acceptlog.CorruptError
		if errors.As(err, &ce) {
			a.log.Error("the accept log is damaged; the rest of the segment is skipped", "at", ce.At)
			a.failures.Inc()
			recs = append(recs, acceptlog.Record{End: ce.Next}) // an empty marker moves past it
		} else if err != nil {
			return 0, err
		}
		if len(recs) == 0 {
			break
		}
		for _, rec := range recs {
			pos = rec.End
			if rec.Data == nil {
				continue
			}
			req, err := decodeRecord(rec.Data)
			if err != nil {
				a.keepFailed(rec, err)
				continue
			}
			reqs = append(reqs, req)
			raws = append(raws, rec)
			messages += len(req.Messages)
			if messages >= limit {
				break
			}
		}
	}
	if pos == start {
		a.group, a.behind = applyGroupMessages, false
		return 0, nil
	}
	a.behind = messages >= limit
	began := time.Now()
	res, errs, err := a.opts.Store.IngestAll(ctx, reqs, a.opts.Key, pos)
	if err != nil {
		a.group = applyGroupMessages
		return 0, err
	}
	a.group = a.nextGroup(limit, messages, time.Since(began))
	for i, e := range errs {
		if e != nil {
			a.keepFailed(raws[i], e)
		}
	}
	a.mu.Lock()
	a.pos = pos
	a.mu.Unlock()
	if err := a.opts.Log.Release(pos); err != nil {
		a.log.Warn("removing applied accept-log segments", "err", err)
	}
	stored := 0
	for _, r := range res {
		stored += r.Stored
		a.duplicates.Add(float64(r.Duplicates))
	}
	a.applied.Add(float64(stored))
	a.transactions.Inc()
	a.committed.Add(1)
	if a.opts.Applied != nil {
		a.opts.Applied(res)
	}
	return max(messages, 1), nil
}

// keepFailed writes a record the store refused to FailedDir.
func (a *Applier) keepFailed(rec acceptlog.Record, cause error) {
	a.failures.Inc()
	path := ""
	if a.opts.FailedDir != "" {
		path = filepath.Join(a.opts.FailedDir, fmt.Sprintf("%016d-%d.rec", rec.End.Segment, rec.End.Offset))
		if err := os.MkdirAll(a.opts.FailedDir, 0o755); err == nil {
			if err := os.WriteFile(path, rec.Data, 0o644); err != nil {
				path = "(not kept: " + err.Error() + ")"
			}
		}
	}
	a.log.Error("an accepted request could not be stored", "ends_at", rec.End, "kept_in", path, "err", cause)
}

// Transactions is how many store transactions the applier has committed.
func (a *Applier) Transactions() int64 { return a.committed.Load() }

// Position is the log position applied so far.
func (a *Applier) Position() acceptlog.Position {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pos
}

// WaitApplied waits until every record synced before the call is stored
// (tests, benchmarks, and shutdown use it).
func (a *Applier) WaitApplied(ctx context.Context) error {
	target := a.opts.Log.End()
	for a.Position().Before(target) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}
