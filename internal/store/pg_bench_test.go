package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/huabu/huabu/internal/store/storetest"
	"github.com/stretchr/testify/require"
)

// benchStores opens a fresh SQLite store and, with HUABU_TEST_POSTGRES_DSN
// set, a fresh PostgreSQL schema: the store benchmarks run on both.
func benchStores(b *testing.B, run func(b *testing.B, s *SQLite)) {
	b.Run("store=sqlite", func(b *testing.B) {
		s, err := OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "huabu.db"))
		require.NoError(b, err)
		defer s.Close()
		run(b, s)
	})
	if !storetest.Available() {
		return
	}
	b.Run("store=postgres", func(b *testing.B) {
		s, err := OpenPostgres(context.Background(), storetest.PostgresDSN(b))
		require.NoError(b, err)
		defer s.Close()
		run(b, s)
	})
}

// BenchmarkLedgerPages claims and settles pages of 1,000 recipients the way
// a broadcast's page activities do (ClaimDeliveries before the provider
// call, SettleDeliveries after), from 8 concurrent senders.
func BenchmarkLedgerPages(b *testing.B) {
	benchStores(b, func(b *testing.B, s *SQLite) {
		var next atomic.Int64
		ledgerSenders(b, s, func(int) (int64, bool) {
			p := next.Add(1) - 1
			return p, p < int64(b.N)
		})
	})
}

// BenchmarkLedgerSends: 8 concurrent sends, each over its own run of
// pages of 1,000 recipients in uid order (as a broadcast's Send
// activities are: their rows interleave in the ledger's b-tree), each
// page claimed before and settled after its provider call. Unlike
// BenchmarkLedgerPages, whose senders take pages in turn, each send's rows
// grow at an edge of their own: the page splits a broadcast pays.
func BenchmarkLedgerSends(b *testing.B) {
	benchStores(b, func(b *testing.B, s *SQLite) {
		ledgerSenders(b, s, ownRuns(b.N))
	})
}

// ownRuns gives each of ledgerSendersN senders its own run of the n pages,
// in order: sender w takes pages w*⌈n/N⌉ onwards.
func ownRuns(n int) func(sender int) (int64, bool) {
	perSender := (n + ledgerSendersN - 1) / ledgerSendersN
	taken := make([]int, ledgerSendersN) // each sender counts its own
	return func(w int) (int64, bool) {
		i := taken[w]
		taken[w]++
		p := int64(w*perSender + i)
		return p, i < perSender && p < int64(n)
	}
}

// ledgerSendersN senders of ledgerPageSize-recipient pages.
const ledgerSendersN, ledgerPageSize = 8, 1000

// ledgerSenders runs ledgerSendersN senders; each claims and settles the
// pages next gives it until it gives none, then reports recipients/s and
// CPU per recipient.
func ledgerSenders(b *testing.B, s *SQLite, next func(sender int) (page int64, ok bool)) {
	key := LedgerKey{RunID: 1, StepID: "broadcast"}
	sendPages(b, next, func(ctx context.Context, p int64, uids []int64) error {
		attempt := fmt.Sprint("attempt-", p)
		claim, err := s.ClaimDeliveries(ctx, key, "jpush", attempt, uids, nil)
		if err != nil {
			return err
		}
		settle := make([]Settlement, len(claim.Mine))
		for i, u := range claim.Mine {
			settle[i] = Settlement{UID: u, State: DeliverySent, ProviderRef: "msg-1"}
		}
		return s.SettleDeliveries(ctx, key, attempt, settle)
	})
}

// sendPages runs ledgerSendersN senders; each hands send the pages next
// gives it (page p holds uids p*ledgerPageSize+1 onwards) until it gives
// none, then reports recipients/s and CPU per recipient over b.N pages.
func sendPages(b *testing.B, next func(sender int) (page int64, ok bool), send func(ctx context.Context, page int64, uids []int64) error) {
	ctx := context.Background()
	b.ResetTimer()
	cpu := cpuTime()
	var wg sync.WaitGroup
	errs := make(chan error, ledgerSendersN)
	for w := range ledgerSendersN {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p, ok := next(w); ok; p, ok = next(w) {
				uids := make([]int64, ledgerPageSize)
				for j := range uids {
					uids[j] = p*ledgerPageSize + int64(j) + 1
				}
				if err := send(ctx, p, uids); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(b, err)
	}
	recipients := float64(b.N * ledgerPageSize)
	b.ReportMetric(recipients/b.Elapsed().Seconds(), "recipients/s")
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/recipients, "cpu-µs/recipient")
}

// BenchmarkIngestGroups: IngestAll on both stores, groups shaped like the
// applier's under `huabu bench ingest` (14 requests of 500 events, users
// drawn from 100,000).
func BenchmarkIngestGroups(b *testing.B) {
	benchStores(b, func(b *testing.B, s *SQLite) {
		ctx := context.Background()
		now := time.Now()
		seq := 0
		const requests, size = 14, 500
		b.ResetTimer()
		cpu, server := cpuTime(), pgServerCPU(b, s)
		for i := 0; i < b.N; i++ {
			reqs := make([]IngestRequest, requests)
			for r := range reqs {
				msgs := make([]Message, size)
				for m := range msgs {
					seq++
					msgs[m] = Message{Type: "track", MessageID: fmt.Sprint("m", seq), UserID: fmt.Sprint("u", (seq*7919)%100000),
						Name: "purchase", Properties: []byte(`{"amount":174,"order_id":"o1-0"}`), Timestamp: now}
				}
				reqs[r] = IngestRequest{Messages: msgs, Options: IngestOptions{Realtime: true, MarkDue: true, ReceivedAt: now}}
			}
			_, errs, err := s.IngestAll(ctx, reqs, "bench.applied", i)
			require.NoError(b, err)
			for _, e := range errs {
				require.NoError(b, e)
			}
		}
		events := float64(b.N * requests * size)
		b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/events, "cpu-µs/event")
		if s.pg {
			b.ReportMetric(float64((pgServerCPU(b, s)-server).Microseconds())/events, "server-cpu-µs/event")
		}
	})
}

// pgServerCPU is the CPU time (user and system) the PostgreSQL backends of
// s's connections have used, read from /proc: the server's share of a
// store path, which wall time under a loaded machine hides. It needs the
// server on this host (a throwaway one, as the benchmarks use); 0 without.
func pgServerCPU(b *testing.B, s *SQLite) time.Duration {
	if !s.pg {
		return 0
	}
	rows, err := s.r.QueryContext(context.Background(), pgRaw+`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'`)
	require.NoError(b, err)
	defer rows.Close()
	var total time.Duration
	for rows.Next() {
		var pid int
		require.NoError(b, rows.Scan(&pid))
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields 14 and 15 (utime, stime, in clock ticks) after the
		// command's closing parenthesis.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(utime+stime) * time.Second / 100 // USER_HZ
	}
	require.NoError(b, rows.Err())
	return total
}

// BenchmarkProfilesPage reads the profiles of a page of 1,000 consecutive
// uids (Profiles), as a broadcast's sender does for every page, from
// 20,000 profiles shaped like `huabu bench broadcast`'s.
func BenchmarkProfilesPage(b *testing.B) {
	benchStores(b, func(b *testing.B, s *SQLite) {
		ctx := context.Background()
		const n, page = 20000, 1000
		ups := make([]ProfileUpdate, 0, n)
		for i := range n {
			id := fmt.Sprintf("b%07d", i)
			ups = append(ups, ProfileUpdate{ID: id, Patch: []byte(fmt.Sprintf(`{"id":%q,"name":"用户%d","city":"上海","level":"金卡","push_alias":%q}`, id, i, id))})
		}
		_, err := s.UpsertProfiles(ctx, ups)
		require.NoError(b, err)
		all, err := s.ScanProfiles(ctx, 0, n)
		require.NoError(b, err)
		uids := make([]int64, len(all))
		for i, r := range all {
			uids[i] = r.UID
		}
		b.ReportAllocs()
		b.ResetTimer()
		cpu := cpuTime()
		for i := 0; i < b.N; i++ {
			lo := (i * page) % n
			rows, err := s.Profiles(ctx, uids[lo:lo+page])
			if err != nil || len(rows) != page {
				b.Fatal(len(rows), err)
			}
		}
		b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N*page), "cpu-µs/profile")
	})
}

// BenchmarkSuppressedAmongPage looks up a page's 1,000 user subjects in a
// suppression list that names none of them, as a broadcast's opt-out check
// does on every page.
func BenchmarkSuppressedAmongPage(b *testing.B) {
	benchStores(b, func(b *testing.B, s *SQLite) {
		ctx := context.Background()
		var entries []Suppression
		for i := range 2000 {
			entries = append(entries, Suppression{Subject: AddressSubject(fmt.Sprint("1390000", i)), Channel: "sms", Source: SuppressAPI})
		}
		_, err := s.Suppress(ctx, entries)
		require.NoError(b, err)
		subjects := make([]string, 1000)
		for i := range subjects {
			subjects[i] = UserSubject(fmt.Sprintf("b%07d", i))
		}
		b.ReportAllocs()
		b.ResetTimer()
		cpu := cpuTime()
		for i := 0; i < b.N; i++ {
			got, err := s.SuppressedAmong(ctx, "push", subjects)
			if err != nil || len(got) != 0 {
				b.Fatal(got, err)
			}
		}
		b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N*len(subjects)), "cpu-µs/subject")
	})
}
