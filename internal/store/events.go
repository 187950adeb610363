package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Message is one validated ingestion message (a Segment call).
type Message struct {
	Type        string // track | page | screen | identify | alias | group
	MessageID   string // dedupe key: Segment's messageId, or a hash of the payload
	UserID      string
	AnonymousID string
	PreviousID  string // alias: the anonymousId being named
	Name        string // track: the event; page and screen calls: "page" / "screen"
	// Properties is a JSON object: the event's properties; for identify the
	// validated merge patch of the traits.
	Properties []byte
	Timestamp  time.Time
}

// IngestOptions say how Ingest treats a request.
type IngestOptions struct {
	// Realtime marks events as sent live (HTTP) rather than imported.
	Realtime bool
	// MarkDue records the touched users as needing their computed traits
	// recomputed (trait_dirty), in the same transaction, so a crash between
	// storing and recomputing loses nothing.
	MarkDue bool
	// ReceivedAt is when Huabu accepted the messages (zero: now). The accept
	// log stores requests before the store does, and keeps that time.
	ReceivedAt time.Time
}

// IngestedEvent is a new track, page or screen row that belongs to a profile.
type IngestedEvent struct {
	Index      int // position in the Ingest input
	ID         int64
	UID        int64
	UserID     string
	ReceivedAt time.Time
}

// IngestResult is what one Ingest call stored.
type IngestResult struct {
	Stored     int             // new messages
	Duplicates int             // messages whose message id was already stored
	Events     []IngestedEvent // new events with a profile, in input order
	Touched    []int64         // profiles whose events or attributes changed
	// Deferred: the messages were accepted into the accept log and will be
	// stored by its applier (Stored, Duplicates, Events and Touched are empty).
	Deferred bool
}

// Ingest stores a request's messages in one transaction: all of them or,
// on error, none. Profiles of unknown userIds are created; identify traits
// are merged (Segment semantics) in message order; messages whose
// message_id is already stored are skipped (duplicates change nothing).
//
// Identity: a message with only an anonymousId belongs to the user an
// earlier alias (or a message carrying both ids) named; otherwise it is kept
// with uid 0 and attached to the user when that anonymousId is first
// aliased. The first mapping of an anonymousId wins.
func (s *SQLite) Ingest(ctx context.Context, msgs []Message, opts IngestOptions) (IngestResult, error) {
	if len(msgs) == 0 {
		return IngestResult{}, nil
	}
	req := &ingestRequest{ctx: ctx, msgs: msgs, opts: opts, done: make(chan struct{})}
	if s.ingests.enqueue(req) {
		s.commitIngests()
	}
	<-req.done
	if req.err != nil {
		return IngestResult{}, fmt.Errorf("ingest: %w", req.err)
	}
	return req.res, nil
}

// Concurrent ingestion requests share transactions (group commit): while
// one transaction is being written, requests that arrive queue up, and the
// next transaction takes all of them, each inside its own savepoint. A
// request that fails is rolled back to its savepoint alone, so each request
// stays all-or-nothing, and a commit is paid once per group instead of once
// per request: most of the cost of a small transaction in WAL mode is
// writing the index pages it dirtied, and a group dirties each page once.
type ingestQueue struct {
	mu      sync.Mutex
	pending []*ingestRequest
	leading bool // a goroutine is committing groups
}

type ingestRequest struct {
	ctx  context.Context
	msgs []Message
	opts IngestOptions
	res  IngestResult
	err  error
	done chan struct{}
}

// maxGroupMessages bounds one group transaction, so a burst does not hold
// the writer for long.
const maxGroupMessages = 8000

// enqueue adds a request; it reports whether the caller must lead (commit
// groups until the queue is empty).
func (q *ingestQueue) enqueue(r *ingestRequest) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending = append(q.pending, r)
	if q.leading {
		return false
	}
	q.leading = true
	return true
}

// next takes the next group, or ends leadership when nothing waits.
func (q *ingestQueue) next() []*ingestRequest {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		q.leading = false
		return nil
	}
	n, size := 0, 0
	for n < len(q.pending) && (n == 0 || size+len(q.pending[n].msgs) <= maxGroupMessages) {
		size += len(q.pending[n].msgs)
		n++
	}
	group := q.pending[:n:n]
	q.pending = q.pending[n:]
	return group
}

func (s *SQLite) commitIngests() {
	for group := s.ingests.next(); group != nil; group = s.ingests.next() {
		s.commitGroup(group)
	}
}

func (s *SQLite) commitGroup(group []*ingestRequest) {
	finish := func(err error) {
		for _, r := range group {
			if r.err == nil && err != nil {
				r.err, r.res = err, IngestResult{}
			}
			close(r.done)
		}
	}
	// The transaction outlives any one request's context: a client that
	// goes away fails its own request, not the group's.
	finish(s.applyGroup(context.Background(), group, true, nil))
}

// errRequestFailed: a request failed in a group applied without savepoints.
var errRequestFailed = errors.New("a request of the group failed")

// applyGroup stores requests in one transaction, each in its own savepoint,
// then runs extra (when set) in the same transaction. It returns an error
// when the transaction as a whole failed (nothing stored); a request that
// failed alone has its err set and its changes rolled back.
//
// Without savepoints a failing request fails the group (errRequestFailed,
// nothing stored): a savepoint makes SQLite copy every page a request
// touches first into a sub-journal, a fifth of the cost of storing events,
// which a caller whose requests are already validated need not pay.
func (s *SQLite) applyGroup(ctx context.Context, group []*ingestRequest, savepoints bool, extra func(*sql.Tx) error) error {
	now := s.now()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	// The events lock (PostgreSQL): appliers one at a time, beside the run
	// path's and the ledger's transactions (ADR 039).
	if err := s.lockEvents(ctx, tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	stored := 0
	// The applier remembers profiles' uids across groups (ADR 047; on
	// PostgreSQL since ADR 053: the counter is read under the write lock's
	// shared mode, and every writer that renames or deletes a profile
	// holds it exclusively, so none commits while the group runs); a group
	// with savepoints may roll parts of itself back, so it neither reads
	// nor feeds the cache.
	var cached *uidLookup
	if !savepoints {
		if cached, err = s.uids.begin(ctx, tx); err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	if !savepoints {
		// Runs of requests that introduce no alias are stored by one pass
		// of ingest each: its statements (and the temporary b-trees SQLite
		// builds for them) are paid per run, not per request — the cost
		// that made a stream of one-event /v1/track calls slow to store.
		// A request that maps an anonymousId is stored on its own, after
		// the ones before it, so identities resolve in request order.
		live := group[:0:0]
		for _, r := range group {
			if r.err = r.ctx.Err(); r.err == nil {
				live = append(live, r)
			}
		}
		for len(live) > 0 {
			n := 1
			if !introducesAliases(live[0].msgs) {
				for n < len(live) && !introducesAliases(live[n].msgs) {
					n++
				}
			}
			parts := make([]ingestPart, n)
			for i, r := range live[:n] {
				parts[i] = ingestPart{msgs: r.msgs, opts: r.opts, at: receivedAt(r.opts, now)}
			}
			res, err := ingest(ctx, tx, parts, s.pg, cached)
			if err != nil {
				_ = tx.Rollback()
				if s.pg && pgUniqueViolation(err) {
					return err // applied again by IngestAll
				}
				return errRequestFailed
			}
			for i, r := range live[:n] {
				r.res = res[i]
			}
			stored += n
			live = live[n:]
		}
	}
	for _, r := range group {
		if !savepoints {
			break // stored above
		}
		if r.err = r.ctx.Err(); r.err != nil {
			continue
		}
		if _, err := tx.ExecContext(ctx, `SAVEPOINT ingest`); err != nil {
			_ = tx.Rollback()
			return err
		}
		res, err := ingest(ctx, tx, []ingestPart{{msgs: r.msgs, opts: r.opts, at: receivedAt(r.opts, now)}}, s.pg, nil)
		if err != nil && (ctx.Err() != nil || (s.pg && pgNotTheRequests(err))) {
			_ = tx.Rollback()
			return err // not this request's fault: the whole group again
		}
		undo := []string{`RELEASE ingest`}
		if r.err = err; err != nil {
			undo = []string{`ROLLBACK TO ingest`, `RELEASE ingest`}
			r.res = IngestResult{}
		} else {
			r.res = res[0]
			stored++
		}
		for _, stmt := range undo {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				_ = tx.Rollback()
				return err
			}
		}
	}
	if extra != nil {
		if err := extra(tx); err != nil {
			_ = tx.Rollback()
			return err
		}
	} else if stored == 0 {
		return tx.Rollback()
	}
	if stored > 0 {
		if err := s.notifyEvents(ctx, tx); err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if cached != nil {
		cached.commit()
	}
	return nil
}

// ingestPart is one request's messages in a pass of ingest.
type ingestPart struct {
	msgs []Message
	opts IngestOptions
	at   time.Time // when it was received
}

func receivedAt(opts IngestOptions, now time.Time) time.Time {
	if !opts.ReceivedAt.IsZero() {
		return opts.ReceivedAt
	}
	return now
}

// introducesAliases reports whether storing msgs may map an anonymousId to
// a user: an alias call, or a message with both ids. Such a request is
// stored in a pass of its own, so the requests after it see the mapping
// the way they would had each been stored alone.
func introducesAliases(msgs []Message) bool {
	for _, m := range msgs {
		if m.Type == "alias" || (m.AnonymousID != "" && m.UserID != "" && m.AnonymousID != m.UserID) {
			return true
		}
	}
	return false
}

// IngestRequest is one request's messages, for IngestAll.
type IngestRequest struct {
	Messages []Message
	Options  IngestOptions
}

// IngestAll stores several requests in one transaction, each all or nothing
// (a request that fails is rolled back alone and its error returned in
// errs), and sets the setting key to value in the same transaction: how the
// accept log's applier stores records and the log position they end at
// together, so a crash can neither lose nor repeat them. err reports a
// transaction that failed as a whole: nothing was stored.
func (s *SQLite) IngestAll(ctx context.Context, reqs []IngestRequest, key string, value any) (res []IngestResult, errs []error, err error) {
	b, err := json.Marshal(value)
	if err != nil {
		return nil, nil, err
	}
	group := make([]*ingestRequest, len(reqs))
	for i, r := range reqs {
		group[i] = &ingestRequest{ctx: ctx, msgs: r.Messages, opts: r.Options}
	}
	setKey := func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, key, string(b))
		return err
	}
	// All at once first; when a request fails, again with a savepoint each,
	// so the others are stored and the failing one is named.
	err = s.applyGroup(ctx, group, false, setKey)
	// PostgreSQL: a row the applier's probe did not see was inserted by
	// another transaction (postgres_ingest.go); applied again, the probe
	// sees it.
	for try := 0; try < 3 && s.pg && pgUniqueViolation(err); try++ {
		err = s.applyGroup(ctx, group, false, setKey)
	}
	if errors.Is(err, errRequestFailed) {
		err = s.applyGroup(ctx, group, true, setKey)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("ingest: %w", err)
	}
	res, errs = make([]IngestResult, len(group)), make([]error, len(group))
	for i, r := range group {
		res[i], errs[i] = r.res, r.err
	}
	return res, errs, nil
}

// cached, when set, is the SQLite applier's uid cache for this transaction.
func ingest(ctx context.Context, tx *sql.Tx, parts []ingestPart, pg bool, cached *uidLookup) ([]IngestResult, error) {
	// The parts' messages in order; partOf[i] and index[i] say whose
	// message i is and where it was in its request.
	total := 0
	for _, part := range parts {
		total += len(part.msgs)
	}
	msgs := make([]Message, 0, total)
	partOf, index := make([]int, 0, total), make([]int, 0, total)
	var nowMS int64 // the latest part's time: profiles created or patched by the pass
	for p, part := range parts {
		msgs = append(msgs, part.msgs...)
		for i := range part.msgs {
			partOf, index = append(partOf, p), append(index, i)
		}
		nowMS = max(nowMS, part.at.UnixMilli())
	}
	results := make([]IngestResult, len(parts))

	// 1. Who is each message about? Mappings already stored come first, then
	// the ones this request introduces, in order.
	anonymous := map[string]string{}
	var unknown []string
	for _, m := range msgs {
		if m.UserID == "" && m.AnonymousID != "" {
			if _, seen := anonymous[m.AnonymousID]; !seen {
				anonymous[m.AnonymousID] = ""
				unknown = append(unknown, m.AnonymousID)
			}
		}
	}
	if len(unknown) > 0 {
		rows, err := tx.QueryContext(ctx, `SELECT anonymous_id, user_id FROM aliases WHERE anonymous_id IN (SELECT value FROM json_each(?))`, stringList(unknown))
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var a, u string
			if err := rows.Scan(&a, &u); err != nil {
				rows.Close()
				return nil, err
			}
			anonymous[a] = u
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	type alias struct{ anon, user string }
	var newAliases []alias
	aliasPart := 0 // the part whose aliases adopt anonymous events and traits (applyGroup passes such a part alone)
	for i, m := range msgs {
		a, u := m.AnonymousID, m.UserID
		if m.Type == "alias" {
			a = m.PreviousID
		}
		if a == "" || u == "" || a == u {
			continue
		}
		if cur, known := anonymous[a]; !known || cur == "" {
			anonymous[a] = u
			if len(newAliases) == 0 {
				aliasPart = partOf[i]
			}
			newAliases = append(newAliases, alias{a, u})
		}
	}
	userOf := func(m Message) string {
		if m.UserID != "" {
			return m.UserID
		}
		return anonymous[m.AnonymousID]
	}

	// 2. Every named user has a profile.
	users := make([]string, 0, len(msgs))
	seenUser := map[string]bool{}
	for _, m := range msgs {
		if u := userOf(m); u != "" && !seenUser[u] {
			seenUser[u] = true
			users = append(users, u)
		}
	}
	uidOf, created, err := profileUIDs(ctx, tx, users, nowMS, pg, cached)
	if err != nil {
		return nil, fmt.Errorf("profiles: %w", err)
	}

	// 3. The messages themselves: bound parameters, many rows per
	// statement (sqliteInsertEvents; no JSON to decode per column).
	isNew := make([]bool, len(msgs))
	ids := make([]int64, len(msgs))
	uids := make([]int64, len(msgs))
	userIDs := make([]string, len(msgs))
	for i, m := range msgs {
		u := userOf(m)
		userIDs[i], uids[i] = u, uidOf[u]
	}
	receivedMS, realtime := make([]int64, len(msgs)), make([]int64, len(msgs))
	for i, p := range partOf {
		receivedMS[i] = parts[p].at.UnixMilli()
		if parts[p].opts.Realtime {
			realtime[i] = 1
		}
	}
	if pg {
		if err := pgInsertEvents(ctx, tx, msgs, uids, userIDs, receivedMS, realtime, isNew, ids); err != nil {
			return nil, fmt.Errorf("events: %w", err)
		}
	} else if err := sqliteInsertEvents(ctx, tx, msgs, uids, userIDs, receivedMS, realtime, isNew, ids); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}

	touched := make([]map[int64]bool, len(parts))
	for p := range touched {
		touched[p] = map[int64]bool{}
	}
	var patches, anonPatches []byte
	for i, m := range msgs {
		r := &results[partOf[i]]
		if !isNew[i] {
			r.Duplicates++
			continue
		}
		r.Stored++
		switch m.Type {
		case "track", "page", "screen":
			if uids[i] != 0 {
				touched[partOf[i]][uids[i]] = true
				r.Events = append(r.Events, IngestedEvent{Index: index[i], ID: ids[i], UID: uids[i], UserID: userIDs[i], ReceivedAt: time.UnixMilli(receivedMS[i])})
			}
		case "identify":
			if len(m.Properties) == 0 {
				continue
			}
			if u := userIDs[i]; u != "" {
				touched[partOf[i]][uids[i]] = true
				patches = appendPatch(patches, u, m.Properties)
			} else {
				anonPatches = appendPatch(anonPatches, m.AnonymousID, m.Properties)
			}
		}
	}
	// 4. Identify traits, in message order (json_each keeps the array order,
	// so a later identify of the same user patches the earlier one).
	if patches != nil {
		if _, err := tx.ExecContext(ctx, `INSERT INTO profiles (id, doc, updated_at)
			SELECT value->>'i', json(value->'d'), ? FROM json_each(?) WHERE true
			ON CONFLICT(id) DO UPDATE SET doc = json_patch(profiles.doc, excluded.doc), updated_at = excluded.updated_at`,
			nowMS, string(append(patches, ']'))); err != nil {
			return nil, fmt.Errorf("identify: %w", err)
		}
	}
	if anonPatches != nil {
		if _, err := tx.ExecContext(ctx, `INSERT INTO anonymous_traits (anonymous_id, doc, updated_at)
			SELECT value->>'i', json(value->'d'), ? FROM json_each(?) WHERE true
			ON CONFLICT(anonymous_id) DO UPDATE SET doc = json_patch(anonymous_traits.doc, excluded.doc), updated_at = excluded.updated_at`,
			nowMS, string(append(anonPatches, ']'))); err != nil {
			return nil, fmt.Errorf("anonymous identify: %w", err)
		}
	}

	// 5. New aliases adopt what their anonymousId did before: events stored
	// with uid 0 and traits of anonymous identifies (the profile's own values win).
	if len(newAliases) > 0 {
		var b []byte
		for _, a := range newAliases {
			b = appendPair(b, a.anon, a.user)
		}
		list := string(append(b, ']'))
		aliased, err := tx.QueryContext(ctx, `INSERT INTO aliases (anonymous_id, user_id, created_at)
			SELECT value->>'a', value->>'u', ? FROM json_each(?) WHERE true
			ON CONFLICT(anonymous_id) DO NOTHING
			RETURNING anonymous_id`, nowMS, list)
		if err != nil {
			return nil, fmt.Errorf("aliases: %w", err)
		}
		var added []string
		for aliased.Next() {
			var a string
			if err := aliased.Scan(&a); err != nil {
				aliased.Close()
				return nil, err
			}
			added = append(added, a)
		}
		aliased.Close()
		if len(added) > 0 {
			moved, err := tx.QueryContext(ctx, `UPDATE events SET uid = p.uid, user_id = p.id
				FROM aliases a JOIN profiles p ON p.id = a.user_id
				WHERE a.anonymous_id IN (SELECT value FROM json_each(?1))
				  AND events.uid = 0 AND events.anonymous_id = a.anonymous_id
				RETURNING events.uid`, stringList(added))
			if err != nil {
				return nil, fmt.Errorf("attach anonymous events: %w", err)
			}
			for moved.Next() {
				var uid int64
				if err := moved.Scan(&uid); err != nil {
					moved.Close()
					return nil, err
				}
				touched[aliasPart][uid] = true
			}
			moved.Close()
			merged, err := tx.QueryContext(ctx, `UPDATE profiles SET doc = json_patch(json_remove(t.doc, '$.id'), profiles.doc), updated_at = ?1
				FROM aliases a JOIN anonymous_traits t ON t.anonymous_id = a.anonymous_id
				WHERE a.anonymous_id IN (SELECT value FROM json_each(?2)) AND profiles.id = a.user_id
				RETURNING profiles.uid`, nowMS, stringList(added))
			if err != nil {
				return nil, fmt.Errorf("merge anonymous traits: %w", err)
			}
			for merged.Next() {
				var uid int64
				if err := merged.Scan(&uid); err != nil {
					merged.Close()
					return nil, err
				}
				touched[aliasPart][uid] = true
			}
			merged.Close()
			if _, err := tx.ExecContext(ctx, `DELETE FROM anonymous_traits WHERE anonymous_id IN (SELECT value FROM json_each(?))`, stringList(added)); err != nil {
				return nil, err
			}
		}
	}

	var due []int64
	for p := range results {
		results[p].Touched = make([]int64, 0, len(touched[p]))
		for uid := range touched[p] {
			results[p].Touched = append(results[p].Touched, uid)
		}
		if parts[p].opts.MarkDue {
			due = append(due, results[p].Touched...)
		}
	}
	if len(due) > 0 {
		slices.Sort(due)
		mark := markDirty
		if pg {
			mark = func(ctx context.Context, tx *sql.Tx, uids []int64) error { return pgMarkDirty(ctx, tx, uids, created) }
		}
		if err := mark(ctx, tx, slices.Compact(due)); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// markDirty records that the users' traits must be recomputed now.
func markDirty(ctx context.Context, tx *sql.Tx, uids []int64) error {
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO trait_dirty (uid) SELECT value FROM json_each(?)`, idList(uids)); err != nil {
		return fmt.Errorf("trait_dirty: %w", err)
	}
	return nil
}

// MarkAllDue schedules every profile for trait recomputation (the trait or
// tag definitions changed), in pages so writers are not blocked for long.
func (s *SQLite) MarkAllDue(ctx context.Context) (int64, error) {
	var total, after int64
	for {
		var last, n int64
		err := s.tx(ctx, func(tx *sql.Tx) error {
			err := tx.QueryRowContext(ctx, `SELECT coalesce(max(uid), 0), count(*) FROM (SELECT uid FROM profiles WHERE uid > ? ORDER BY uid LIMIT 50000) AS page`, after).Scan(&last, &n)
			if err != nil || n == 0 {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO trait_dirty (uid) SELECT uid FROM profiles WHERE uid > ? AND uid <= ?`, after, last)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("mark all due: %w", err)
		}
		if n == 0 {
			return total, nil
		}
		total += n
		after = last
	}
}

func appendPatch(b []byte, id string, patch []byte) []byte {
	if b == nil {
		b = append(b, '[')
	} else {
		b = append(b, ',')
	}
	b = append(b, `{"i":`...)
	q, _ := json.Marshal(id)
	b = append(b, q...)
	b = append(b, `,"d":`...)
	b = append(b, patch...)
	return append(b, '}')
}

func appendPair(b []byte, anon, user string) []byte {
	if b == nil {
		b = append(b, '[')
	} else {
		b = append(b, ',')
	}
	a, _ := json.Marshal(anon)
	u, _ := json.Marshal(user)
	b = append(b, `{"a":`...)
	b = append(b, a...)
	b = append(b, `,"u":`...)
	b = append(b, u...)
	return append(b, '}')
}

// EventRow is one stored message.
type EventRow struct {
	ID          int64
	UID         int64
	UserID      string
	AnonymousID string
	Type        string
	Name        string
	Properties  []byte
	Timestamp   time.Time
	ReceivedAt  time.Time
	Realtime    bool
}

// EventsAfter returns up to limit stored track, page and screen events
// with id > after, in id order: how an engine that missed events (a
// restart between storing and handing them over) catches up.
func (s *SQLite) EventsAfter(ctx context.Context, after int64, limit int) ([]EventRow, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, uid, user_id, anonymous_id, type, name, properties, ts, received_at, realtime
		FROM events WHERE id > ? AND type IN ('track', 'page', 'screen') ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, err
	}
	return scanEvents(rows)
}

// UserEvents returns a profile's events, oldest first (tests, support).
func (s *SQLite) UserEvents(ctx context.Context, userID string) ([]EventRow, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, uid, user_id, anonymous_id, type, name, properties, ts, received_at, realtime
		FROM events WHERE user_id = ? ORDER BY ts, id`, userID)
	if err != nil {
		return nil, err
	}
	return scanEvents(rows)
}

// CountEvents counts stored messages of all types.
func (s *SQLite) CountEvents(ctx context.Context) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&n)
	return n, err
}

func scanEvents(rows *sql.Rows) ([]EventRow, error) {
	defer rows.Close()
	var out []EventRow
	for rows.Next() {
		var e EventRow
		var ts, recv int64
		var props string
		if err := rows.Scan(&e.ID, &e.UID, &e.UserID, &e.AnonymousID, &e.Type, &e.Name, &props, &ts, &recv, &e.Realtime); err != nil {
			return nil, err
		}
		e.Properties = []byte(props)
		e.Timestamp, e.ReceivedAt = time.UnixMilli(ts), time.UnixMilli(recv)
		out = append(out, e)
	}
	return out, rows.Err()
}
