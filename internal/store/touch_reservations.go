package store

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"time"
)

// CapRule is a frequency cap as the store checks it: at most Max messages
// on Channel ("any": every channel) per Window.
type CapRule struct {
	Channel string
	Max     int
	Window  time.Duration
}

// reserveChunk bounds the parameters of one statement (SQLite binds them in
// time quadratic in their number).
const reserveChunk = 400

// ReserveTouches checks users against frequency caps and records a touch
// on channel for each one the caps let through, in one write transaction
// (ADR 023): it holds the store's write lock (SQLite's writer, PostgreSQL's
// advisory lock) from the check to the record, so two sends — on two
// workers — cannot both pass a cap of 1. Touches are keyed
// by the send (key): a user the same send reserved before (an earlier
// attempt) keeps the reservation and is not checked again, nor counted
// against itself. It returns the users the caps stopped.
func (s *SQLite) ReserveTouches(ctx context.Context, key LedgerKey, channel string, rules []CapRule, uids []int64, now time.Time) (map[int64]bool, error) {
	capped := map[int64]bool{}
	if len(uids) == 0 || len(rules) == 0 {
		return capped, nil
	}
	sorted := slices.Clone(uids)
	slices.Sort(sorted) // each user once
	sorted = slices.Compact(sorted)
	var longest time.Duration
	for _, r := range rules {
		longest = max(longest, r.Window)
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for chunk := range slices.Chunk(sorted, reserveChunk) {
			args := int64Args(chunk)
			mine := map[int64]bool{}
			rows, err := tx.QueryContext(ctx, `SELECT uid FROM touches WHERE run_id = ? AND step_id = ? AND visit = ? AND uid IN (`+placeholders(len(chunk))+`)`,
				append([]any{key.RunID, key.StepID, key.Visit}, args...)...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var u int64
				if err := rows.Scan(&u); err != nil {
					rows.Close()
					return err
				}
				mine[u] = true
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			type touch struct {
				channel string
				at      int64
			}
			past := map[int64][]touch{}
			rows, err = tx.QueryContext(ctx, `SELECT uid, channel, at FROM touches WHERE at >= ? AND NOT (run_id = ? AND step_id = ? AND visit = ?) AND uid IN (`+placeholders(len(chunk))+`)`,
				append([]any{now.Add(-longest).UnixMilli(), key.RunID, key.StepID, key.Visit}, args...)...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var u, at int64
				var ch string
				if err := rows.Scan(&u, &ch, &at); err != nil {
					rows.Close()
					return err
				}
				past[u] = append(past[u], touch{ch, at})
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			var grant []any
			for _, u := range chunk {
				if mine[u] {
					continue
				}
				stop := false
				for _, r := range rules {
					if r.Channel != "any" && r.Channel != channel {
						continue
					}
					since, n := now.Add(-r.Window).UnixMilli(), 0
					for _, t := range past[u] {
						if t.at >= since && (r.Channel == "any" || r.Channel == t.channel) {
							n++
						}
					}
					if n >= r.Max {
						stop = true
						break
					}
				}
				if stop {
					capped[u] = true
					continue
				}
				grant = append(grant, u, now.UnixMilli(), channel, key.RunID, key.StepID, key.Visit)
			}
			if len(grant) > 0 {
				if _, err := tx.ExecContext(ctx, `INSERT INTO touches (uid, at, channel, run_id, step_id, visit) VALUES `+valuesList(len(grant)/6, "(?, ?, ?, ?, ?, ?)"), grant...); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return capped, nil
}

// SettleTouches keeps the touches a send reserved for users it sent to —
// on the channel each was sent on (a fallback's) — and drops those of users
// it did not send to, so they count against no cap.
func (s *SQLite) SettleTouches(ctx context.Context, key LedgerKey, sentOn map[int64]string, notSent []int64) error {
	if len(sentOn) == 0 && len(notSent) == 0 {
		return nil
	}
	// Shared (ADR 039): it changes only this send's own touch rows, and
	// ReserveTouches, which reads other sends' touches to check caps, holds
	// the write lock exclusively, so it never runs beside this.
	return s.sharedTx(ctx, func(tx *sql.Tx) error {
		for chunk := range slices.Chunk(notSent, reserveChunk) {
			if _, err := tx.ExecContext(ctx, `DELETE FROM touches WHERE run_id = ? AND step_id = ? AND visit = ? AND uid IN (`+placeholders(len(chunk))+`)`,
				append([]any{key.RunID, key.StepID, key.Visit}, int64Args(chunk)...)...); err != nil {
				return err
			}
		}
		byChannel := map[string][]int64{}
		for u, ch := range sentOn {
			byChannel[ch] = append(byChannel[ch], u)
		}
		for ch, us := range byChannel {
			slices.Sort(us)
			for chunk := range slices.Chunk(us, reserveChunk) {
				if _, err := tx.ExecContext(ctx, `UPDATE touches SET channel = ? WHERE run_id = ? AND step_id = ? AND visit = ? AND channel <> ? AND uid IN (`+placeholders(len(chunk))+`)`,
					append([]any{ch, key.RunID, key.StepID, key.Visit, ch}, int64Args(chunk)...)...); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func valuesList(n int, tuple string) string {
	return strings.TrimSuffix(strings.Repeat(tuple+", ", n), ", ")
}

func int64Args(ids []int64) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}
