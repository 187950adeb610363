package store

// BenchmarkLedgerKeyWidth is the measurement behind ADR 051's next step: a
// broadcast's ledger claims and settles (8 senders over their own page
// ranges, as BenchmarkLedgerSends, without the counters) on a scratch table
// with the ledger's columns, keyed by (run_id, step_id, visit, uid) as
// deliveries is ("narrow=false") or by one integer for run/step/visit and
// uid ("narrow=true"). Run one sub-benchmark per process.

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func BenchmarkLedgerKeyWidth(b *testing.B) {
	for _, narrow := range []bool{false, true} {
		b.Run(fmt.Sprint("narrow=", narrow), func(b *testing.B) {
			ctx := context.Background()
			s, err := OpenSQLite(ctx, filepath.Join(b.TempDir(), "huabu.db"))
			require.NoError(b, err)
			defer s.Close()
			key, keyCols, keyArgs := "run_id INTEGER NOT NULL, step_id TEXT NOT NULL, visit INTEGER NOT NULL", "run_id, step_id, visit", []any{int64(1), "broadcast", int64(0)}
			where := "run_id = ? AND step_id = ? AND visit = ?"
			if narrow {
				key, keyCols, keyArgs, where = "ledger INTEGER NOT NULL", "ledger", []any{int64(1)}, "ledger = ?"
			}
			_, err = s.w.ExecContext(ctx, `CREATE TABLE lx (`+key+`, uid INTEGER NOT NULL, channel TEXT NOT NULL, state TEXT NOT NULL, batch INTEGER NOT NULL,
				reason TEXT NOT NULL DEFAULT '', provider_ref TEXT NOT NULL DEFAULT '', updated_at INTEGER NOT NULL, provider_key TEXT NOT NULL DEFAULT '', key_at INTEGER NOT NULL DEFAULT 0,
				PRIMARY KEY (`+keyCols+`, uid)) WITHOUT ROWID`)
			require.NoError(b, err)
			ph := strings.Repeat("?, ", len(keyArgs))
			ins := `INSERT OR IGNORE INTO lx (` + keyCols + `, uid, channel, state, batch, updated_at, provider_key) SELECT ` + ph + `value, ?, ?, ?, ?, ? FROM json_each(?)`
			settle, err := s.w.PrepareContext(ctx, `UPDATE lx SET state = ?, reason = ?, provider_ref = ?, updated_at = ? WHERE `+where+` AND batch = ? AND state = ? AND uid BETWEEN ? AND ? AND +uid IN (?`+strings.Repeat(`, ?`, 127)+`)`)
			require.NoError(b, err)
			defer settle.Close()
			sendPages(b, ownRuns(b.N), func(ctx context.Context, p int64, uids []int64) error {
				batch := batchID(fmt.Sprint("attempt-", p))
				if err := s.ledgerTx(ctx, func(tx *sql.Tx) error {
					_, err := tx.ExecContext(ctx, ins, append(append([]any{}, keyArgs...), "jpush", DeliveryPending, batch, int64(1), "", idList(uids))...)
					return err
				}); err != nil {
					return err
				}
				return s.ledgerTx(ctx, func(tx *sql.Tx) error {
					for start := 0; start < len(uids); start += 128 {
						part := uids[start:min(start+128, len(uids))]
						args := append([]any{DeliverySent, "", "msg-1", int64(2)}, keyArgs...)
						args = append(args, batch, DeliveryPending, part[0], part[len(part)-1])
						for k := range 128 {
							args = append(args, part[min(k, len(part)-1)])
						}
						if _, err := tx.StmtContext(ctx, settle).ExecContext(ctx, args...); err != nil {
							return err
						}
					}
					return nil
				})
			})
			var n int64
			require.NoError(b, s.w.QueryRowContext(ctx, `SELECT count(*) FROM lx WHERE state = 'sent'`).Scan(&n))
			require.Equal(b, int64(b.N*ledgerPageSize), n)
		})
	}
}
