package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
)

// ProfileUpdate merges Patch (a JSON object, RFC 7396 merge patch: nested
// objects merge, null deletes, arrays replace) into the profile of ID,
// creating it when new. This is Segment identify semantics.
type ProfileUpdate struct {
	ID    string
	Patch []byte
}

// ProfileRow is one stored profile.
type ProfileRow struct {
	UID int64
	ID  string
	Doc []byte // the user document
}

// UpsertProfiles merges updates in one transaction; it returns how many rows
// it touched. Bulk import calls it with a few thousand rows at a time: the
// rows go in as one JSON array parameter.
func (s *SQLite) UpsertProfiles(ctx context.Context, updates []ProfileUpdate) (int, error) {
	if len(updates) == 0 {
		return 0, nil
	}
	var b []byte
	b = append(b, '[')
	for i, u := range updates {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"i":`...)
		id, _ := json.Marshal(u.ID)
		b = append(b, id...)
		b = append(b, `,"d":`...)
		b = append(b, u.Patch...)
		b = append(b, '}')
	}
	b = append(b, ']')
	now := s.now().UnixMilli()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := adoptWeComPlaceholders(ctx, tx, string(b)); err != nil {
			return err
		}
		// "WHERE true" tells SQLite the ON CONFLICT belongs to the upsert, not the SELECT.
		_, err := tx.ExecContext(ctx, `INSERT INTO profiles (id, doc, updated_at)
			SELECT value->>'i', json(value->'d'), ? FROM json_each(?) WHERE true
			ON CONFLICT(id) DO UPDATE SET doc = json_patch(profiles.doc, excluded.doc), updated_at = excluded.updated_at`, now, string(b))
		if err != nil {
			return err
		}
		// Their attributes changed: computed traits and auto-tags (rules may
		// read attributes; a new profile has none yet) are recomputed, as
		// after an identify call.
		_, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO trait_dirty (uid)
			SELECT uid FROM profiles WHERE id IN (SELECT value->>'i' FROM json_each(?))`, string(b))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("upsert profiles: %w", err)
	}
	return len(updates), nil
}

// adoptWeComPlaceholders gives a WeCom customer's placeholder profile — the
// one a directory sync or contact callback created before Huabu knew the
// customer's user id, named by the external userid — the user id of an
// imported profile that carries the same wecom_external_userid, so the
// import completes that profile instead of creating a second one. The uid,
// and with it the events, tags and history, stay.
func adoptWeComPlaceholders(ctx context.Context, tx *sql.Tx, updates string) error {
	rows, err := tx.QueryContext(ctx, `UPDATE profiles SET id = json_extract(n.value, '$.i')
		FROM json_each(?) n
		WHERE profiles.id = json_extract(n.value, '$.d.wecom_external_userid')
		  AND json_extract(profiles.doc, '$.wecom_external_userid') = profiles.id
		  AND json_extract(n.value, '$.i') != profiles.id
		  AND NOT EXISTS (SELECT 1 FROM profiles p WHERE p.id = json_extract(n.value, '$.i'))
		RETURNING uid, id`, updates)
	if err != nil {
		return fmt.Errorf("adopt WeCom placeholders: %w", err)
	}
	type renamed struct {
		uid int64
		id  string
	}
	var done []renamed
	for rows.Next() {
		var r renamed
		if err := rows.Scan(&r.uid, &r.id); err != nil {
			rows.Close()
			return err
		}
		done = append(done, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range done {
		if _, err := tx.ExecContext(ctx, `UPDATE events SET user_id = ? WHERE uid = ?`, r.id, r.uid); err != nil {
			return err
		}
	}
	return nil
}

// ScanProfiles returns up to limit profiles with uid > after, in uid order.
func (s *SQLite) ScanProfiles(ctx context.Context, after int64, limit int) ([]ProfileRow, error) {
	// Forgotten profiles (tombstones) are in no audience.
	rows, err := s.r.QueryContext(ctx, `SELECT uid, id, `+s.profileDoc()+` FROM profiles WHERE uid > ? AND forgotten = 0 ORDER BY uid LIMIT ?`, after, limit)
	if err != nil {
		return nil, err
	}
	return scanProfileRows(rows, limit, nil, s.pg)
}

// profileDoc is how the profile reads select doc. On SQLite it is a BLOB:
// modernc hands a BLOB over in a slice of its own per value, which the
// scan keeps (sql.RawBytes, no copy), where a TEXT value is copied into a
// []byte, then a string, and database/sql copies that into the row's
// []byte again — two reads of every profile per broadcast, ~550 MB of
// garbage per million recipients (ADR 051). PostgreSQL's driver may reuse
// its buffers: its docs are copied (scanProfileRows).
func (s *SQLite) profileDoc() string { return profileDoc(s.pg) }

func profileDoc(pg bool) string {
	if pg {
		return "doc"
	}
	return "CAST(doc AS BLOB)"
}

// scanProfileRows reads profile rows (uid, id, profileDoc); with want, only
// the rows whose uid is in it (sorted, as a page's members are).
func scanProfileRows(rows *sql.Rows, capacity int, want []int64, pg bool) ([]ProfileRow, error) {
	defer rows.Close()
	out := make([]ProfileRow, 0, capacity)
	// One set of scan targets for all rows: targets declared per row
	// escape, two allocations per profile read.
	var uid int64
	var id string
	var doc sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&uid, &id, &doc); err != nil {
			return nil, err
		}
		if want != nil {
			i, found := slices.BinarySearch(want, uid)
			if !found {
				continue
			}
			want = want[i+1:]
		}
		p := ProfileRow{UID: uid, ID: id, Doc: doc}
		if pg {
			p.Doc = bytes.Clone(doc)
		}
		doc = nil // not appended into by the next Scan: the row keeps it
		out = append(out, p)
	}
	return out, rows.Err()
}

// Profiles returns the profiles of the given uids, in uid order.
func (s *SQLite) Profiles(ctx context.Context, uids []int64) ([]ProfileRow, error) {
	if len(uids) == 0 {
		return nil, nil
	}
	// A page of a broadcast's cohort holds most uids of its range: reading
	// the range in order, and leaving out the rows not asked for, is
	// cheaper than looking each uid up. A sparse list is looked up.
	want := uids
	if !slices.IsSorted(want) {
		want = slices.Sorted(slices.Values(uids))
	}
	if lo, hi := want[0], want[len(want)-1]; hi-lo < 2*int64(len(want)) {
		rows, err := s.r.QueryContext(ctx, `SELECT uid, id, `+s.profileDoc()+` FROM profiles WHERE uid BETWEEN ? AND ? ORDER BY uid`, lo, hi)
		if err != nil {
			return nil, err
		}
		return scanProfileRows(rows, len(uids), want, s.pg)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT uid, id, `+s.profileDoc()+` FROM profiles WHERE uid`+inIDs+` ORDER BY uid`, idList(uids))
	if err != nil {
		return nil, err
	}
	return scanProfileRows(rows, len(uids), nil, s.pg)
}

// ProfileByID returns one profile by its user id.
func (s *SQLite) ProfileByID(ctx context.Context, id string) (ProfileRow, error) {
	var p ProfileRow
	err := s.r.QueryRowContext(ctx, `SELECT uid, id, doc FROM profiles WHERE id = ?`, id).Scan(&p.UID, &p.ID, &p.Doc)
	if err == sql.ErrNoRows {
		return p, ErrNotFound
	}
	return p, err
}

// UIDs maps user ids to uids; unknown ids are left out.
func (s *SQLite) UIDs(ctx context.Context, ids []string) (map[string]int64, error) {
	out := make(map[string]int64, len(ids))
	rows, err := s.r.QueryContext(ctx, `SELECT id, uid FROM profiles WHERE id IN (SELECT value FROM json_each(?))`, stringList(ids))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var uid int64
		if err := rows.Scan(&id, &uid); err != nil {
			return nil, err
		}
		out[id] = uid
	}
	return out, rows.Err()
}

// CountProfiles is the number of profiles.
func (s *SQLite) CountProfiles(ctx context.Context) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM profiles`).Scan(&n)
	return n, err
}

// UpdateTags adds and removes tags on the given profiles in one transaction.
func (s *SQLite) UpdateTags(ctx context.Context, uids []int64, add, remove []string) error {
	if len(uids) == 0 || len(add)+len(remove) == 0 {
		return nil
	}
	now := s.now().UnixMilli()
	return s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT uid, doc FROM profiles WHERE uid`+inIDs, idList(uids))
		if err != nil {
			return err
		}
		type change struct {
			uid int64
			doc []byte
		}
		var changes []change
		for rows.Next() {
			var uid int64
			var doc []byte
			if err := rows.Scan(&uid, &doc); err != nil {
				rows.Close()
				return err
			}
			updated, changed, err := retag(doc, add, remove)
			if err != nil {
				rows.Close()
				return fmt.Errorf("profile %d: %w", uid, err)
			}
			if changed {
				changes = append(changes, change{uid, updated})
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		st, err := tx.PrepareContext(ctx, `UPDATE profiles SET doc = ?, updated_at = ? WHERE uid = ?`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, c := range changes {
			if _, err := st.ExecContext(ctx, string(c.doc), now, c.uid); err != nil {
				return err
			}
		}
		return nil
	})
}

// retag edits the tags list of a user document.
func retag(doc []byte, add, remove []string) ([]byte, bool, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		return nil, false, err
	}
	var tags []string
	if raw, ok := m["tags"]; ok {
		_ = json.Unmarshal(raw, &tags) // a malformed tags value is replaced
	}
	before := len(tags)
	changed := false
	tags = slices.DeleteFunc(tags, func(t string) bool { return slices.Contains(remove, t) })
	changed = len(tags) != before
	for _, a := range add {
		if !slices.Contains(tags, a) {
			tags = append(tags, a)
			changed = true
		}
	}
	if !changed {
		return doc, false, nil
	}
	if tags == nil {
		tags = []string{}
	}
	raw, _ := json.Marshal(tags)
	m["tags"] = raw
	out, err := json.Marshal(m)
	return out, true, err
}

// Staff is one staff member of the directory.
type Staff struct {
	UserID string `json:"userid"`
	Name   string `json:"name"`
	Grid   string `json:"grid"`
	Leader string `json:"leader"`
}

// UpsertStaff writes staff members (replacing name, grid and leader).
func (s *SQLite) UpsertStaff(ctx context.Context, staff []Staff) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO staff (userid, name, grid, leader) VALUES (?, ?, ?, ?)
			ON CONFLICT(userid) DO UPDATE SET name = excluded.name, grid = excluded.grid, leader = excluded.leader`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, m := range staff {
			if _, err := st.ExecContext(ctx, m.UserID, m.Name, m.Grid, m.Leader); err != nil {
				return err
			}
		}
		return nil
	})
}

// StaffByIDs returns the staff members with the given userids.
func (s *SQLite) StaffByIDs(ctx context.Context, ids []string) (map[string]Staff, error) {
	out := map[string]Staff{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT userid, name, grid, leader FROM staff WHERE userid IN (SELECT value FROM json_each(?))`, stringList(ids))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var m Staff
		if err := rows.Scan(&m.UserID, &m.Name, &m.Grid, &m.Leader); err != nil {
			return nil, err
		}
		out[m.UserID] = m
	}
	return out, rows.Err()
}
