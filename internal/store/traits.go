package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Aggregate is one value computed from a profile's events of one name
// within [Since, now]: what a computed trait needs from the events table.
// The traits package decides which aggregates it wants; the store turns
// them into index range scans over events(uid, name, ts).
type Aggregate struct {
	Fn    string // count | sum | min | max | first | last | first_ts | last_ts
	Event string
	Path  string // JSON path of the property (sum, min, max, first, last), e.g. $."amount"; first and last skip events without it
	Since int64  // unix ms; older events are outside the window (0: all time)
}

// RFMValue is one purchaser's raw RFM inputs.
type RFMValue struct {
	UID       int64
	LastTS    int64
	Frequency int64
	Monetary  float64
}

// DocWrite replaces a profile's document.
type DocWrite struct {
	UID int64
	Doc []byte
}

// Due is when a profile's traits next need recomputing; At < 0 removes it.
type Due struct {
	UID int64
	At  int64
}

// TraitTx is one write transaction in which computed traits are read,
// recomputed and written, so a concurrent ingest cannot slip an event
// between the read and the write (SQLite has one writer anyway).
type TraitTx struct {
	ctx context.Context
	tx  *sql.Tx
	now int64
	pg  bool
}

// Traits runs fn in a write transaction.
func (s *SQLite) Traits(ctx context.Context, fn func(*TraitTx) error) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		return fn(&TraitTx{ctx: ctx, tx: tx, now: s.now().UnixMilli(), pg: s.pg})
	})
}

// Now is the store clock at the start of the transaction, unix ms.
func (t *TraitTx) Now() int64 { return t.now }

// Due returns up to limit profiles whose traits are due at or before at,
// the longest overdue first.
func (t *TraitTx) Due(at int64, limit int) ([]int64, error) {
	return scanUIDs(t.tx.QueryContext(t.ctx, `SELECT uid FROM trait_due WHERE at <= ? ORDER BY at, uid LIMIT ?`, at, limit))
}

// Dirty returns up to limit profiles whose traits must be recomputed now.
func (t *TraitTx) Dirty(limit int) ([]int64, error) {
	return scanUIDs(t.tx.QueryContext(t.ctx, `SELECT uid FROM trait_dirty ORDER BY uid LIMIT ?`, limit))
}

// Docs returns the profiles of uids, in uid order.
func (t *TraitTx) Docs(uids []int64) ([]ProfileRow, error) {
	rows, err := t.tx.QueryContext(t.ctx, `SELECT uid, id, `+profileDoc(t.pg)+` FROM profiles WHERE uid`+inIDs+` ORDER BY uid`, idList(uids))
	if err != nil {
		return nil, err
	}
	return scanProfileRows(rows, len(uids), nil, t.pg)
}

// Aggregates computes aggs for each uid. Values are int64, float64, string
// (first/last: the property as JSON text) or nil, as SQLite's aggregate
// functions return them; a user without events gets count 0, sum 0.0 and
// nil for the rest.
//
// SQLite: one statement per event name reads each of the page's users'
// events of that name once (a range of events(uid, name, ts) from the
// oldest window's start) and computes every aggregate of that name with a
// FILTER on its own window — a correlated range scan per aggregate read
// the same rows once per aggregate (13 scans per user for the example
// config). Rows come in index order, the order each scan read them in, so
// sums add in the same order and values are exactly as before. first and
// last stay a scan each (they need the row, not an aggregate).
func (t *TraitTx) Aggregates(uids []int64, aggs []Aggregate) (map[int64][]any, error) {
	out := make(map[int64][]any, len(uids))
	if len(uids) == 0 || len(aggs) == 0 {
		return out, nil
	}
	for _, uid := range uids {
		vals := make([]any, len(aggs))
		for i, a := range aggs {
			switch a.Fn {
			case "count":
				vals[i] = int64(0)
			case "sum":
				vals[i] = 0.0
			}
		}
		out[uid] = vals
	}
	var names []string
	byName := map[string][]int{}
	for i, a := range aggs {
		if _, ok := byName[a.Event]; !ok {
			names = append(names, a.Event)
		}
		byName[a.Event] = append(byName[a.Event], i)
	}
	// One statement per event name for the whole page on either store
	// (ADR 038, ADR 043): SQLite reads the uids as a JSON list, PostgreSQL
	// as an array.
	var list any = idList(uids)
	query := eventAggregateQuery
	if t.pg {
		list, query = uids, pgEventAggregateQuery
	}
	for _, name := range names {
		idx := byName[name]
		q, args := query(name, aggs, idx)
		rows, err := t.tx.QueryContext(t.ctx, q, append([]any{list}, args...)...)
		if err != nil {
			return nil, fmt.Errorf("trait aggregates: %w", err)
		}
		var uid int64
		got := make([]any, len(idx))
		dest := make([]any, len(idx)+1)
		dest[0] = &uid
		for i := range got {
			dest[i+1] = &got[i]
		}
		for rows.Next() {
			clear(got)
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return nil, err
			}
			vals, ok := out[uid]
			if !ok {
				continue
			}
			for i, v := range got {
				if b, ok := v.([]byte); ok {
					v = string(b)
				}
				vals[idx[i]] = v
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("trait aggregates: %w", err)
		}
	}
	if t.pg {
		for _, vals := range out {
			pgNumbers(aggs, vals)
		}
	}
	return out, nil
}

// eventAggregateQuery is SQLite's statement for the aggregates aggs[idx],
// all of one event name: ?1 is the uids (JSON array), then args.
func eventAggregateQuery(name string, aggs []Aggregate, idx []int) (string, []any) {
	args := []any{name}
	index := map[any]int{}
	param := func(v any) string {
		if i, ok := index[v]; ok {
			return "?" + strconv.Itoa(i)
		}
		args = append(args, v)
		index[v] = len(args) + 1
		return "?" + strconv.Itoa(len(args)+1)
	}
	oldest := aggs[idx[0]].Since
	for _, i := range idx {
		oldest = min(oldest, aggs[i].Since)
	}
	var b strings.Builder
	b.WriteString("SELECT e.uid")
	for _, i := range idx {
		a := aggs[i]
		since := param(a.Since)
		var path string
		if a.Path != "" {
			path = param("p:" + a.Path)
		}
		filter := " FILTER (WHERE e.ts >= " + since + ")"
		num := "iif(json_type(e.properties, " + path + ") IN ('integer', 'real'), e.properties ->> " + path + ", NULL)"
		// first and last are of the events that carry the property: an
		// event without it (or with null) does not blank the value.
		scan := func(order string) string {
			return "(SELECT f.properties -> " + path + " FROM events f WHERE f.uid = e.uid AND f.name = ?2 AND f.ts >= " + since +
				" AND coalesce(json_type(f.properties, " + path + "), 'null') <> 'null' ORDER BY " + order + " LIMIT 1)"
		}
		b.WriteString(", ")
		switch a.Fn {
		case "count":
			b.WriteString("count(*)" + filter)
		case "sum":
			b.WriteString("total(" + num + ")" + filter)
		case "min":
			b.WriteString("min(" + num + ")" + filter)
		case "max":
			b.WriteString("max(" + num + ")" + filter)
		case "first":
			b.WriteString(scan("f.ts, f.id"))
		case "last":
			b.WriteString(scan("f.ts DESC, f.id DESC"))
		case "first_ts":
			b.WriteString("min(e.ts)" + filter)
		case "last_ts":
			b.WriteString("max(e.ts)" + filter)
		default:
			panic("store: unknown aggregate " + a.Fn)
		}
	}
	b.WriteString(" FROM events e WHERE e.uid IN (SELECT value FROM json_each(?1)) AND e.name = ?2 AND e.ts >= " + param(oldest) + " GROUP BY e.uid")
	// Strip the prefix that kept paths apart from event names in index.
	for i, a := range args {
		if s, ok := a.(string); ok && i > 0 {
			args[i] = s[2:]
		}
	}
	return b.String(), args
}

// WriteDocs replaces profile documents in one statement. (The OR IGNORE
// and OR REPLACE forms in this file spare SQLite a statement journal for
// multi-row statements; no constraint can fail on these rows.)
func (t *TraitTx) WriteDocs(docs []DocWrite) error {
	if len(docs) == 0 {
		return nil
	}
	var b []byte
	b = append(b, '[')
	for i, d := range docs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"u":`...)
		b = strconv.AppendInt(b, d.UID, 10)
		b = append(b, `,"d":`...)
		b = append(b, d.Doc...)
		b = append(b, '}')
	}
	b = append(b, ']')
	_, err := t.tx.ExecContext(t.ctx, `UPDATE OR IGNORE profiles SET doc = j.value->>'d', updated_at = ?
		FROM json_each(?) j WHERE profiles.uid = j.value->>'u'`, t.now, string(b))
	if err != nil {
		return fmt.Errorf("write traits: %w", err)
	}
	return nil
}

// SetDue records when each profile is next due (At < 0: never) and that
// it is no longer dirty.
func (t *TraitTx) SetDue(due []Due) error {
	if len(due) == 0 {
		return nil
	}
	all := make([]int64, len(due))
	for i, d := range due {
		all[i] = d.UID
	}
	if _, err := t.tx.ExecContext(t.ctx, `DELETE FROM trait_dirty WHERE uid`+inIDs, idList(all)); err != nil {
		return fmt.Errorf("trait_dirty: %w", err)
	}
	var set, del []int64
	var b []byte
	b = append(b, '[')
	for _, d := range due {
		if d.At < 0 {
			del = append(del, d.UID)
			continue
		}
		if len(set) > 0 {
			b = append(b, ',')
		}
		set = append(set, d.UID)
		b = append(b, '[')
		b = strconv.AppendInt(b, d.UID, 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, d.At, 10)
		b = append(b, ']')
	}
	b = append(b, ']')
	if len(set) > 0 {
		if _, err := t.tx.ExecContext(t.ctx, `INSERT OR REPLACE INTO trait_due (uid, at) SELECT value->>0, value->>1 FROM json_each(?)`, string(b)); err != nil {
			return fmt.Errorf("trait_due: %w", err)
		}
	}
	if len(del) > 0 {
		if _, err := t.tx.ExecContext(t.ctx, `DELETE FROM trait_due WHERE uid`+inIDs, idList(del)); err != nil {
			return fmt.Errorf("trait_due: %w", err)
		}
	}
	return nil
}

// SetRFM writes purchasers' raw RFM inputs and removes the rows of users
// who no longer purchased within the window.
func (t *TraitTx) SetRFM(values []RFMValue, remove []int64) error {
	if len(values) > 0 {
		var b []byte
		b = append(b, '[')
		for i, v := range values {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '[')
			b = strconv.AppendInt(b, v.UID, 10)
			b = append(b, ',')
			b = strconv.AppendInt(b, v.LastTS, 10)
			b = append(b, ',')
			b = strconv.AppendInt(b, v.Frequency, 10)
			b = append(b, ',')
			b = strconv.AppendFloat(b, v.Monetary, 'g', -1, 64)
			b = append(b, ']')
		}
		b = append(b, ']')
		if _, err := t.tx.ExecContext(t.ctx, `INSERT OR REPLACE INTO rfm_values (uid, last_ts, frequency, monetary)
			SELECT value->>0, value->>1, value->>2, value->>3 FROM json_each(?)`, string(b)); err != nil {
			return fmt.Errorf("rfm values: %w", err)
		}
	}
	if len(remove) > 0 {
		if _, err := t.tx.ExecContext(t.ctx, `DELETE FROM rfm_values WHERE uid`+inIDs, idList(remove)); err != nil {
			return fmt.Errorf("rfm values: %w", err)
		}
	}
	return nil
}

// ClearRFM removes every purchaser's raw RFM inputs (RFM is no longer configured).
func (t *TraitTx) ClearRFM() error {
	if _, err := t.tx.ExecContext(t.ctx, `DELETE FROM rfm_values`); err != nil {
		return fmt.Errorf("rfm values: %w", err)
	}
	return nil
}

// RFMValuesOf returns the stored raw RFM inputs of uids.
func (t *TraitTx) RFMValuesOf(uids []int64) (map[int64]RFMValue, error) {
	rows, err := t.tx.QueryContext(t.ctx, `SELECT uid, last_ts, frequency, monetary FROM rfm_values WHERE uid`+inIDs, idList(uids))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[int64]RFMValue, len(uids))
	for rows.Next() {
		var v RFMValue
		if err := rows.Scan(&v.UID, &v.LastTS, &v.Frequency, &v.Monetary); err != nil {
			return nil, err
		}
		out[v.UID] = v
	}
	return out, rows.Err()
}

// RFMAfter pages through the purchasers' uids in uid order.
func (t *TraitTx) RFMAfter(after int64, limit int) ([]int64, error) {
	return scanUIDs(t.tx.QueryContext(t.ctx, `SELECT uid FROM rfm_values WHERE uid > ? ORDER BY uid LIMIT ?`, after, limit))
}

// Setting reads a named value into v; it reports false when it is not set.
func (t *TraitTx) Setting(key string, v any) (bool, error) {
	return setting(t.ctx, t.tx, key, v)
}

// SetSetting stores a named value.
func (t *TraitTx) SetSetting(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = t.tx.ExecContext(t.ctx, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, key, string(b))
	return err
}

// DeleteSetting removes a named value.
func (t *TraitTx) DeleteSetting(key string) error {
	_, err := t.tx.ExecContext(t.ctx, `DELETE FROM settings WHERE key = ?`, key)
	return err
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func setting(ctx context.Context, q queryRower, key string, v any) (bool, error) {
	var raw string
	err := q.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&raw)
	if err == sql.ErrNoRows {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, json.Unmarshal([]byte(raw), v)
}

// Setting reads a named value outside a transaction.
func (s *SQLite) Setting(ctx context.Context, key string, v any) (bool, error) {
	return setting(ctx, s.r, key, v)
}

// ScanRFM streams every purchaser's raw RFM inputs in uid order, for
// quintile boundaries (a million rows is a few MB).
func (s *SQLite) ScanRFM(ctx context.Context, fn func(RFMValue)) error {
	var after int64
	for {
		rows, err := s.r.QueryContext(ctx, `SELECT uid, last_ts, frequency, monetary FROM rfm_values WHERE uid > ? ORDER BY uid LIMIT 50000`, after)
		if err != nil {
			return err
		}
		n := 0
		for rows.Next() {
			var v RFMValue
			if err := rows.Scan(&v.UID, &v.LastTS, &v.Frequency, &v.Monetary); err != nil {
				rows.Close()
				return err
			}
			fn(v)
			after = v.UID
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
	}
}

// CountDue counts profiles whose traits are due at or before at, dirty ones included.
func (s *SQLite) CountDue(ctx context.Context, at int64) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM trait_dirty) + (SELECT count(*) FROM trait_due WHERE at <= ?)`, at).Scan(&n)
	return n, err
}

// scanUIDs reads a one-column result of uids.
func scanUIDs(rows *sql.Rows, err error) ([]int64, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var uid int64
		if err := rows.Scan(&uid); err != nil {
			return nil, err
		}
		out = append(out, uid)
	}
	return out, rows.Err()
}
