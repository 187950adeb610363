package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
	"time"

	"github.com/huabu/huabu/internal/outbound"
)

// Delivery states in the ledger.
const (
	DeliveryPending    = "pending"
	DeliverySent       = "sent"
	DeliveryFailed     = "failed"
	DeliveryUnknown    = "unknown"    // a crash left it pending: it may have been sent
	DeliverySuppressed = "suppressed" // never sent on purpose: no address, policy, unsubscribed
)

// LedgerKey names the deliveries of one visit of a step in a run. A step
// inside a loop is visited again by the same users; Visit counts the
// earlier visits (0 the first time), so each visit sends exactly once.
type LedgerKey struct {
	RunID  int64
	StepID string
	Visit  int
}

// Claim is the result of claiming ledger rows for a page.
type Claim struct {
	// Mine are the recipients this attempt must send to: rows it created,
	// or pending rows it created before and is resuming.
	Mine []int64
	// Done maps recipients already decided by an earlier attempt to their
	// state; they must not be sent again.
	Done map[int64]string
	// Keys are the provider idempotency keys recorded for rows in Mine
	// (RecordDeliveryKeys): those deliveries must be sent with them.
	Keys map[int64]string
}

// KeyLives says, per channel, how long after it was recorded a provider
// idempotency key still dedupes a resend (channels.Spec.KeyLife): the
// channels of a step that have such keys.
type KeyLives map[string]time.Duration

// A row's provider_key is "" (the provider may have been called without a
// key: a resend could duplicate), "CHANNEL:" (claimed for a channel with
// keys, whose calls are made only after their keys are recorded: nothing
// was sent yet) or "CHANNEL:KEY" (maybe sent under KEY).
func splitKey(k string) (channel, providerKey string, marked bool) {
	return strings.Cut(k, ":")
}

// ClaimDeliveries writes pending ledger rows for recipients that have none,
// under the attempt's batch id, before any provider is called. A pending row
// left by another attempt means that attempt died mid-page (ADR 010). Its
// provider_key says what to do: with a key that still dedupes (lives), this
// attempt takes the row over and sends it again with that key, which the
// provider drops if the first call got through; with only the channel's mark
// no call was made, so it is sent afresh; otherwise the message may have
// gone out, and the row becomes unknown rather than being resent.
func (s *SQLite) ClaimDeliveries(ctx context.Context, key LedgerKey, channel, attempt string, uids []int64, lives KeyLives) (Claim, error) {
	batch := batchID(attempt)
	clock := s.now()
	now := clock.UnixMilli()
	var claim Claim
	err := s.ledgerTx(ctx, func(tx *sql.Tx) error {
		claim = Claim{Done: map[int64]string{}}
		d := counterDeltas{}
		keep := func(uid int64, k string) {
			claim.Mine = append(claim.Mine, uid)
			if _, pk, _ := splitKey(k); pk != "" {
				if claim.Keys == nil {
					claim.Keys = map[int64]string{}
				}
				claim.Keys[uid] = k
			}
		}
		resendable := func(k string, keyAt int64) bool {
			ch, pk, marked := splitKey(k)
			switch {
			case !marked:
				return false
			case pk == "":
				return true // claimed, never called
			default:
				life := lives[ch]
				return life > 0 && clock.Sub(time.UnixMilli(keyAt)) < life
			}
		}
		// Insert first: on a page's first attempt every row is new, and the
		// insert is all the claim does. Only when some rows were there
		// already (an earlier attempt, or on PostgreSQL a concurrent claim,
		// whose commit the insert waits for) are the page's rows read and
		// judged one by one; this attempt's own rows read as its to send.
		// On PostgreSQL a row the insert skipped can be gone by the read (the
		// other attempt released it: rate limited): such recipients are
		// inserted again in the next round, as if this claim came after.
		mark := ""
		if lives[channel] > 0 {
			mark = channel + ":"
		}
		todo := uids
		for round := 0; len(todo) > 0; round++ {
			if round == 3 {
				return fmt.Errorf("claim deliveries: %d rows keep changing under this claim", len(todo))
			}
			inserted, err := s.insertDeliveries(ctx, tx, key, channel, batch, now, mark, todo)
			if err != nil {
				return fmt.Errorf("claim deliveries: %w", err)
			}
			d[counterKey{key.StepID, key.Visit, DeliveryPending, ""}] += inserted
			if inserted == int64(len(todo)) {
				claim.Mine = append(claim.Mine, todo...)
				break
			}
			seen := make(map[int64]bool, len(todo))
			var stale, retaken []int64
			rows, err := tx.QueryContext(ctx, `SELECT uid, state, batch, provider_key, key_at FROM deliveries WHERE run_id = ? AND step_id = ? AND visit = ? AND `+uidIn+s.forUpdate(), append([]any{key.RunID, key.StepID, key.Visit}, uidArgs(todo)...)...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var uid, b, keyAt int64
				var state, k string
				if err := rows.Scan(&uid, &state, &b, &k, &keyAt); err != nil {
					rows.Close()
					return err
				}
				seen[uid] = true
				switch {
				case state == DeliveryPending && b == batch:
					keep(uid, k)
				case state == DeliveryPending && resendable(k, keyAt):
					keep(uid, k)
					retaken = append(retaken, uid)
				case state == DeliveryPending:
					stale = append(stale, uid)
					claim.Done[uid] = DeliveryUnknown
				default:
					claim.Done[uid] = state
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			if err := s.updateStates(ctx, tx, key, 0, stale, DeliveryUnknown, "crashed_mid_send", "", now, d); err != nil {
				return err
			}
			if len(retaken) > 0 {
				if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET batch = ?, updated_at = ? WHERE run_id = ? AND step_id = ? AND visit = ? AND `+uidIn,
					append([]any{batch, now, key.RunID, key.StepID, key.Visit}, uidArgs(retaken)...)...); err != nil {
					return err
				}
			}
			var gone []int64
			for _, u := range todo {
				if !seen[u] {
					gone = append(gone, u)
					seen[u] = true // a uid listed twice is tried once
				}
			}
			todo = gone
		}
		return addCounters(ctx, tx, key.RunID, d)
	})
	return claim, err
}

// insertDeliveries writes pending rows for the recipients that have none
// and returns how many it wrote: rows already there (an earlier attempt's,
// on PostgreSQL a concurrent claim's) are left as they are.
func (s *SQLite) insertDeliveries(ctx context.Context, tx *sql.Tx, key LedgerKey, channel string, batch, now int64, mark string, uids []int64) (int64, error) {
	var res sql.Result
	var err error
	if !s.pg {
		res, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO deliveries (run_id, step_id, visit, uid, channel, state, batch, updated_at, provider_key) SELECT ?, ?, ?, value, ?, ?, ?, ?, ? FROM json_each(?)`,
			key.RunID, key.StepID, key.Visit, channel, DeliveryPending, batch, now, mark, idList(uids))
	} else {
		res, err = tx.ExecContext(ctx, pgRaw+`INSERT INTO deliveries (run_id, step_id, visit, uid, channel, state, batch, updated_at, provider_key)
		SELECT $1::bigint, $2, $3::bigint, u, $4, $5, $6::bigint, $7::bigint, $8 FROM unnest($9::bigint[]) AS u
		ON CONFLICT DO NOTHING`, key.RunID, key.StepID, int64(key.Visit), channel, DeliveryPending, batch, now, mark, uids)
	}
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Settlement is the decided state of one ledger row.
type Settlement struct {
	UID         int64
	State       string
	Reason      string
	ProviderRef string
	Channel     string // set when a fallback channel delivered it
}

// RecordDeliveryKeys writes the provider idempotency key of each delivery
// (uid → "CHANNEL:KEY") on this attempt's pending rows, before the provider
// is called; "" before a call through a channel without keys (a fallback),
// so a crash leaves those rows unknown. Rows another attempt took over are
// not this attempt's to send: that is an error, and the caller must not
// call the provider.
func (s *SQLite) RecordDeliveryKeys(ctx context.Context, key LedgerKey, attempt string, keys map[int64]string) error {
	if len(keys) == 0 {
		return nil
	}
	byKey := map[string][]int64{}
	var order []string
	for uid, k := range keys {
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], uid)
	}
	sort.Strings(order)
	batch := batchID(attempt)
	now := s.now().UnixMilli()
	return s.ledgerTx(ctx, func(tx *sql.Tx) error {
		var n int64
		for _, k := range order {
			changed, err := s.execListed(ctx, tx, "set_keys", []any{k, now, key.RunID, key.StepID, key.Visit, DeliveryPending, batch}, byKey[k])
			if err != nil {
				return err
			}
			n += changed
		}
		if n != int64(len(keys)) {
			return fmt.Errorf("recording provider keys: %d of %d deliveries are no longer this attempt's", int64(len(keys))-n, len(keys))
		}
		return nil
	})
}

// SettleDeliveries records outcomes. Rows with the same state, reason and
// reference are updated together, so a grouped provider call is one
// statement. Only rows the attempt still holds change: a row another
// attempt took over (ClaimDeliveries) is that attempt's to settle.
func (s *SQLite) SettleDeliveries(ctx context.Context, key LedgerKey, attempt string, settlements []Settlement) error {
	if len(settlements) == 0 {
		return nil
	}
	type outcome struct{ state, reason, ref, channel string }
	groups := map[outcome][]int64{}
	var order []outcome
	for _, st := range settlements {
		k := outcome{st.State, st.Reason, st.ProviderRef, st.Channel}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], st.UID)
	}
	now := s.now().UnixMilli()
	batch := batchID(attempt)
	return s.ledgerTx(ctx, func(tx *sql.Tx) error {
		d := counterDeltas{}
		for _, k := range order {
			uids := groups[k]
			if k.channel != "" {
				if err := updateChannel(ctx, tx, key, batch, uids, k.channel); err != nil {
					return err
				}
			}
			if err := s.settleRows(ctx, tx, key, batch, uids, k.state, k.reason, k.ref, now, d); err != nil {
				return err
			}
		}
		return addCounters(ctx, tx, key.RunID, d)
	})
}

// settleRows decides this attempt's pending rows among uids. A row is
// settled once, from pending (with no reason), by the attempt that claimed
// it; a row already settled, or taken over by another attempt, is not
// changed. So the counter move is pending → state for as many rows as the
// update changed, and needs no read of the rows first.
func (s *SQLite) settleRows(ctx context.Context, tx *sql.Tx, key LedgerKey, batch int64, uids []int64, state, reason, ref string, now int64, d counterDeltas) error {
	n, err := s.execListed(ctx, tx, "settle", []any{state, reason, ref, now, key.RunID, key.StepID, key.Visit, batch, DeliveryPending}, uids)
	if err != nil {
		return err
	}
	d[counterKey{key.StepID, key.Visit, DeliveryPending, ""}] -= n
	d[counterKey{key.StepID, key.Visit, state, reason}] += n
	return nil
}

// updateStates sets the state of rows, of one attempt's batch unless batch
// is 0, adding the counter moves to d (applied once, last: addCounters).
func (s *SQLite) updateStates(ctx context.Context, tx *sql.Tx, key LedgerKey, batch int64, uids []int64, state, reason, ref string, now int64, d counterDeltas) error {
	if len(uids) == 0 {
		return nil
	}
	if err := s.moveLedgerCounters(ctx, tx, key, batch, uids, state, reason, d); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = ?, reason = ?, provider_ref = ?, updated_at = ? WHERE run_id = ? AND step_id = ? AND visit = ? AND (? = 0 OR batch = ?) AND `+uidIn,
		append([]any{state, reason, ref, now, key.RunID, key.StepID, key.Visit, batch, batch}, uidArgs(uids)...)...)
	return err
}

func updateChannel(ctx context.Context, tx *sql.Tx, key LedgerKey, batch int64, uids []int64, channel string) error {
	_, err := tx.ExecContext(ctx, `UPDATE deliveries SET channel = ? WHERE run_id = ? AND step_id = ? AND visit = ? AND batch = ? AND state = ? AND `+uidIn,
		append([]any{channel, key.RunID, key.StepID, key.Visit, batch, DeliveryPending}, uidArgs(uids)...)...)
	return err
}

// ReleaseDeliveries deletes this attempt's pending rows for recipients whose
// provider call certainly did not send (rate limited, rejected before
// sending), so the retried attempt claims them afresh.
func (s *SQLite) ReleaseDeliveries(ctx context.Context, key LedgerKey, attempt string, uids []int64) error {
	batch := batchID(attempt)
	return s.ledgerTx(ctx, func(tx *sql.Tx) error {
		_, n, err := s.ledgerStates(ctx, tx, key, batch, DeliveryPending, uids)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM deliveries WHERE run_id = ? AND step_id = ? AND visit = ? AND state = ? AND batch = ? AND `+uidIn,
			append([]any{key.RunID, key.StepID, key.Visit, DeliveryPending, batch}, uidArgs(uids)...)...); err != nil {
			return err
		}
		return addCounters(ctx, tx, key.RunID, counterDeltas{{key.StepID, key.Visit, DeliveryPending, ""}: -n})
	})
}

// WriteOutbox records outbox messages; it implements channels.OutboxWriter.
func (s *SQLite) WriteOutbox(ctx context.Context, records []outbound.OutboxRecord) error {
	if len(records) == 0 {
		return nil
	}
	type row struct {
		Canvas  string          `json:"c"`
		Run     int64           `json:"r"`
		Step    string          `json:"s"`
		Channel string          `json:"ch"`
		User    string          `json:"u"`
		Address string          `json:"a"`
		Sender  string          `json:"se"`
		Message json.RawMessage `json:"m"`
		At      int64           `json:"t"`
	}
	rows := make([]row, len(records))
	for i, r := range records {
		msg, err := json.Marshal(r.Message)
		if err != nil {
			return err
		}
		rows[i] = row{r.CanvasID, parseRunID(r.RunID), r.StepID, r.Channel, r.Recipient.UserID, r.Recipient.Address, r.Recipient.Sender, msg, r.At.UnixMilli()}
	}
	b, err := json.Marshal(rows)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO outbox (canvas_id, run_id, step_id, channel, user_id, address, sender, message, created_at)
		SELECT value->>'c', value->>'r', value->>'s', value->>'ch', value->>'u', value->>'a', value->>'se', json(value->'m'), value->>'t' FROM json_each(?)`, string(b))
	return err
}

func parseRunID(s string) int64 {
	var id int64
	_, _ = fmt.Sscan(s, &id)
	return id
}

// OutboxMessage is one recorded outbox message.
type OutboxMessage struct {
	ID        int64           `json:"id"`
	CanvasID  string          `json:"canvas"`
	RunID     int64           `json:"run"`
	StepID    string          `json:"step"`
	Channel   string          `json:"channel"`
	UserID    string          `json:"user"`
	Address   string          `json:"address"`
	Sender    string          `json:"sender,omitempty"`
	Message   json.RawMessage `json:"message"`
	CreatedAt time.Time       `json:"at"`
}

// Outbox lists recorded messages, newest first, optionally for one canvas.
func (s *SQLite) Outbox(ctx context.Context, canvasID string, limit int) ([]OutboxMessage, error) {
	q := `SELECT id, canvas_id, run_id, step_id, channel, user_id, address, sender, message, created_at FROM outbox`
	var args []any
	if canvasID != "" {
		q += ` WHERE canvas_id = ?`
		args = append(args, canvasID)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []OutboxMessage
	for rows.Next() {
		var m OutboxMessage
		var msg string
		var at int64
		if err := rows.Scan(&m.ID, &m.CanvasID, &m.RunID, &m.StepID, &m.Channel, &m.UserID, &m.Address, &m.Sender, &msg, &at); err != nil {
			return nil, err
		}
		m.Message, m.CreatedAt = json.RawMessage(msg), time.UnixMilli(at)
		out = append(out, m)
	}
	return out, rows.Err()
}

// OutboxAfter is a canvas's outbox messages with ids above afterID, oldest
// first, at most limit; only their ids, users and times. On SQLite it is
// what a poller that has read up to afterID has not seen yet (the writer is
// one connection, so a message committed later has a larger id); on
// PostgreSQL ids come from a sequence and commits may land out of id
// order, so a poller reads again from some way below. The bench reads the
// outbox this way while runs are still writing to it.
func (s *SQLite) OutboxAfter(ctx context.Context, canvasID string, afterID int64, limit int) ([]OutboxMessage, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, user_id, created_at FROM outbox WHERE id > ? AND canvas_id = ? ORDER BY id LIMIT ?`, afterID, canvasID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []OutboxMessage
	for rows.Next() {
		var m OutboxMessage
		var at int64
		if err := rows.Scan(&m.ID, &m.UserID, &at); err != nil {
			return nil, err
		}
		m.CanvasID, m.CreatedAt = canvasID, time.UnixMilli(at)
		out = append(out, m)
	}
	return out, rows.Err()
}

// StepCounts is what happened at one step.
type StepCounts struct {
	StepID     string           `json:"step"`
	Entered    int64            `json:"entered"`
	Sent       int64            `json:"sent"`
	Failed     map[string]int64 `json:"failed,omitempty"`     // by reason
	Suppressed map[string]int64 `json:"suppressed,omitempty"` // by reason
	Unknown    int64            `json:"unknown,omitempty"`
	Pending    int64            `json:"pending,omitempty"`
	Exited     int64            `json:"exited"`
	// ExitReasons breaks Exited down by reason (completed, an exit step's
	// reason, exit_event, stopped, cancelled).
	ExitReasons map[string]int64 `json:"exit_reasons,omitempty"`
	Converted   int64            `json:"converted"`
	// Visit numbers a visit (1 the first) in Visits.
	Visit int `json:"visit,omitempty"`
	// Visits breaks a step inside a loop down by visit, when users came to
	// it more than once in a run: each visit sends its own messages.
	Visits []*StepCounts `json:"visits,omitempty"`
}

// add adds o's message and entry counts to c.
func (c *StepCounts) add(o *StepCounts) {
	c.Entered += o.Entered
	c.Sent += o.Sent
	c.Unknown += o.Unknown
	c.Pending += o.Pending
	c.Converted += o.Converted
	for k, n := range o.Failed {
		c.Failed[k] += n
	}
	for k, n := range o.Suppressed {
		c.Suppressed[k] += n
	}
}

// Counts gathers per-step counts for one run (runID > 0) or every run of a
// canvas (runID == 0). Entries and cohort exits are per-cohort rows; the
// ledger, exits and conversions are read from step_counters, which their
// writes keep in the same transaction from the rows they change, so retried
// activities never double-count (ADR 020).
func (s *SQLite) Counts(ctx context.Context, canvasID string, runID int64) (map[string]*StepCounts, int64, error) {
	runFilter, arg := `run_id IN (SELECT id FROM runs WHERE canvas_id = ?)`, any(canvasID)
	if runID > 0 {
		runFilter, arg = `run_id = ?`, any(runID)
	}
	out := map[string]*StepCounts{}
	step := func(id string) *StepCounts {
		c, ok := out[id]
		if !ok {
			c = &StepCounts{StepID: id, Failed: map[string]int64{}, Suppressed: map[string]int64{}}
			out[id] = c
		}
		return c
	}
	// Entries, deliveries and conversions are counted per visit first and
	// summed into the step at the end.
	type stepVisit struct {
		step  string
		visit int
	}
	visits := map[stepVisit]*StepCounts{}
	visit := func(id string, v int) *StepCounts {
		k := stepVisit{id, v}
		c, ok := visits[k]
		if !ok {
			c = &StepCounts{StepID: id, Visit: v + 1, Failed: map[string]int64{}, Suppressed: map[string]int64{}}
			visits[k] = c
		}
		return c
	}
	type row struct {
		step, state, reason string
		visit               int
		n                   int64
	}
	query := func(q string, scan func(*sql.Rows) error) error {
		rows, err := s.r.QueryContext(ctx, q, arg)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	if err := query(`SELECT step_id, visit, sum(count) FROM step_entries WHERE `+runFilter+` GROUP BY step_id, visit`, func(r *sql.Rows) error {
		var id string
		var v int
		var n int64
		err := r.Scan(&id, &v, &n)
		visit(id, v).Entered = n
		return err
	}); err != nil {
		return nil, 0, err
	}
	// Deliveries, exits and conversions are read from the counters the
	// writes maintain (ADR 020), not grouped from their rows.
	if err := query(`SELECT step_id, visit, kind, reason, sum(n) FROM step_counters WHERE `+runFilter+` AND kind NOT IN ('exited', 'converted') GROUP BY step_id, visit, kind, reason HAVING sum(n) <> 0`, func(r *sql.Rows) error {
		var x row
		if err := r.Scan(&x.step, &x.visit, &x.state, &x.reason, &x.n); err != nil {
			return err
		}
		c := visit(x.step, x.visit)
		switch x.state {
		case DeliverySent:
			c.Sent += x.n
		case DeliveryFailed:
			c.Failed[x.reason] += x.n
		case DeliverySuppressed:
			c.Suppressed[x.reason] += x.n
		case DeliveryUnknown:
			c.Unknown += x.n
		case DeliveryPending:
			c.Pending += x.n
		}
		return nil
	}); err != nil {
		return nil, 0, err
	}
	exited := func(r *sql.Rows) error {
		var id, reason string
		var n int64
		if err := r.Scan(&id, &reason, &n); err != nil {
			return err
		}
		c := step(id)
		c.Exited += n
		if c.ExitReasons == nil {
			c.ExitReasons = map[string]int64{}
		}
		c.ExitReasons[reason] += n
		return nil
	}
	if err := query(`SELECT step_id, reason, sum(count) FROM cohort_exits WHERE `+runFilter+` GROUP BY step_id, reason`, exited); err != nil {
		return nil, 0, err
	}
	if err := query(`SELECT step_id, reason, sum(n) FROM step_counters WHERE `+runFilter+` AND kind = 'exited' GROUP BY step_id, reason HAVING sum(n) <> 0`, exited); err != nil {
		return nil, 0, err
	}
	var converted int64
	if err := s.r.QueryRowContext(ctx, `SELECT coalesce(sum(n), 0) FROM step_counters WHERE `+runFilter+` AND kind = 'converted'`, arg).Scan(&converted); err != nil {
		return nil, 0, err
	}
	if converted > 0 {
		if err := s.convertedBySteps(ctx, runFilter, arg, visit); err != nil {
			return nil, 0, err
		}
	}
	keys := make([]stepVisit, 0, len(visits))
	for k := range visits {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].step != keys[j].step {
			return keys[i].step < keys[j].step
		}
		return keys[i].visit < keys[j].visit
	})
	for _, k := range keys {
		c := step(k.step)
		c.add(visits[k])
		if k.visit > 0 || visits[stepVisit{k.step, 1}] != nil {
			c.Visits = append(c.Visits, visits[k])
		}
	}
	return out, converted, nil
}

// convertedBySteps counts, for each step and visit, converted users who
// entered it. Each cohort is counted once however many steps it entered
// (a cohort goes through steps until it splits), a few pages at a time,
// merged against the run's conversions in those pages' uid range (both
// sorted), so a report on a million-user run holds a few thousand ids at
// once, not every member and conversion.
func (s *SQLite) convertedBySteps(ctx context.Context, runFilter string, arg any, visit func(string, int) *StepCounts) error {
	type entry struct {
		run    int64
		step   string
		visit  int
		cohort int64
	}
	var entries []entry
	rows, err := s.r.QueryContext(ctx, `SELECT run_id, step_id, visit, cohort_id FROM step_entries WHERE `+runFilter+` ORDER BY cohort_id, step_id, visit`, arg)
	if err != nil {
		return err
	}
	for rows.Next() {
		var e entry
		if err := rows.Scan(&e.run, &e.step, &e.visit, &e.cohort); err != nil {
			rows.Close()
			return err
		}
		entries = append(entries, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	type runCohort struct{ run, cohort int64 }
	converted := map[runCohort]int64{}
	const pagesAtOnce = 16
	for _, e := range entries {
		k := runCohort{e.run, e.cohort}
		n, done := converted[k]
		if !done {
			for from := int64(0); ; from += pagesAtOnce {
				pages, more, err := s.pagesFrom(ctx, e.cohort, from, pagesAtOnce)
				if err != nil {
					return err
				}
				if len(pages) > 0 {
					lo, hi := pages[0].Members[0], pages[0].Members[0]
					for _, p := range pages {
						lo, hi = min(lo, p.Members[0]), max(hi, p.Members[len(p.Members)-1])
					}
					conv, err := s.conversionsBetween(ctx, e.run, lo, hi)
					if err != nil {
						return err
					}
					for _, p := range pages {
						n += countCommon(p.Members, conv)
					}
				}
				if !more {
					break
				}
			}
			converted[k] = n
		}
		visit(e.step, e.visit).Converted += n
	}
	return nil
}

// countCommon counts the values in both ascending lists.
func countCommon(a, b []int64) int64 {
	var n int64
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			n++
			i++
			j++
		}
	}
	return n
}

// pagesFrom returns up to n stored pages of a cohort from page number from
// on, and whether more may follow.
func (s *SQLite) pagesFrom(ctx context.Context, cohortID, from int64, n int) ([]Page, bool, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT page, members FROM cohort_pages WHERE cohort_id = ? AND page >= ? AND page < ? ORDER BY page`, cohortID, from, from+int64(n))
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	var out []Page
	for rows.Next() {
		var p Page
		var blob []byte
		if err := rows.Scan(&p.No, &blob); err != nil {
			return nil, false, err
		}
		if p.Members, err = UnpackMembers(blob); err != nil {
			return nil, false, err
		}
		if len(p.Members) > 0 {
			out = append(out, p)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	var more bool
	err = s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM cohort_pages WHERE cohort_id = ? AND page >= ?)`, cohortID, from+int64(n)).Scan(&more)
	return out, more, err
}

// conversionsBetween returns a run's converted users with uid in [lo, hi],
// ascending.
func (s *SQLite) conversionsBetween(ctx context.Context, runID, lo, hi int64) ([]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT uid FROM conversions WHERE run_id = ? AND uid >= ? AND uid <= ? ORDER BY uid`, runID, lo, hi)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var u int64
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// batchID hashes an attempt's name into the ledger's 8-byte batch column:
// rows stay small, and only equality matters.
func batchID(attempt string) int64 {
	h := fnv.New64a()
	h.Write([]byte(attempt))
	return int64(h.Sum64())
}
