package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// The ledger's hot writes (a settle, a page's provider keys) change a
// page's rows named by uid. On SQLite, "uid IN (SELECT value FROM
// json_each(?))" is a subquery, and an UPDATE whose WHERE holds one runs in
// two passes: it collects the matching rows' keys, then seeks each row
// again, and the write seeks it a third time — three descents of the
// four-column key per row, most of a settle's CPU. With the ids as a list
// SQLite updates each row where its scan stands (one pass), and with the
// list kept out of the index ("+uid") the scan is one range, uid BETWEEN
// the page's least and greatest id, each row checked against the list. A
// literal list would be parsed on every statement (a thousand numbers cost
// as much as the update), so the statements are prepared once, when the
// store opens, for lists of 8, 16, … listedMax ids; a shorter list is
// padded with its last id (a duplicate changes nothing). ADR 036.

// listedMax is the longest list one statement takes; longer lists are
// split. A page is store.PageSize (1,000) recipients.
const listedMax = 1024

// listedWrites are the statements that end in a uid list: the text before
// it, which ends in "AND ".
var listedWrites = map[string]string{
	"settle":   `UPDATE deliveries SET state = ?, reason = ?, provider_ref = ?, updated_at = ? WHERE run_id = ? AND step_id = ? AND visit = ? AND batch = ? AND state = ? AND `,
	"set_keys": `UPDATE deliveries SET provider_key = ?, key_at = ? WHERE run_id = ? AND step_id = ? AND visit = ? AND state = ? AND batch = ? AND `,
}

type listedKey struct {
	name string
	size int
}

// listedSizes are the list lengths statements are prepared for.
func listedSizes() []int {
	var sizes []int
	for n := 8; n <= listedMax; n *= 2 {
		sizes = append(sizes, n)
	}
	return sizes
}

// prepareListed prepares listedWrites on the writer (SQLite only; before
// any transaction holds its one connection).
func (s *SQLite) prepareListed(ctx context.Context) error {
	s.listed = map[listedKey]*sql.Stmt{}
	for name, prefix := range listedWrites {
		for _, n := range listedSizes() {
			q := prefix + `uid BETWEEN ? AND ? AND +uid IN (?` + strings.Repeat(`, ?`, n-1) + `)`
			st, err := s.w.PrepareContext(ctx, q)
			if err != nil {
				return fmt.Errorf("store: prepare %s/%d: %w", name, n, err)
			}
			s.listed[listedKey{name, n}] = st
		}
	}
	return nil
}

func (s *SQLite) closeListed() error {
	var err error
	for _, st := range s.listed {
		err = errors.Join(err, st.Close())
	}
	return err
}

// execListed runs the listed write name with args, for the rows of uids,
// in tx, and returns how many rows it changed. On PostgreSQL (which plans
// the json list as "= ANY" of an array) it is one statement with uidIn.
func (s *SQLite) execListed(ctx context.Context, tx *sql.Tx, name string, args []any, uids []int64) (int64, error) {
	prefix, ok := listedWrites[name]
	if !ok {
		return 0, fmt.Errorf("store: no listed write %q", name)
	}
	if len(uids) == 0 {
		return 0, nil
	}
	if s.pg || s.listed == nil {
		res, err := tx.ExecContext(ctx, prefix+uidIn, append(args, uidArgs(uids)...)...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}
	var changed int64
	for start := 0; start < len(uids); start += listedMax {
		part := uids[start:min(start+listedMax, len(uids))]
		size := 8
		for size < len(part) {
			size *= 2
		}
		all := make([]any, 0, len(args)+2+size)
		all = append(all, args...)
		all = append(all, uidArgs(part)[:2]...) // the range
		for i := range size {
			all = append(all, part[min(i, len(part)-1)])
		}
		res, err := tx.StmtContext(ctx, s.listed[listedKey{name, size}]).ExecContext(ctx, all...)
		if err != nil {
			return changed, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return changed, err
		}
		changed += n
	}
	return changed, nil
}
