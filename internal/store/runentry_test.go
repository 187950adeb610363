package store

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// runRows is what a run's beginning and entry leave in the store.
type runRows struct {
	Entered     int64
	Size, Span  int64
	Sealed      bool
	Pages       [][]int64
	Entries     []int64
	StepEntries []string
}

func readRunRows(t *testing.T, s *SQLite, run Run, cohort Cohort) runRows {
	t.Helper()
	ctx := context.Background()
	r, err := s.GetRun(ctx, run.ID)
	require.NoError(t, err)
	c, err := s.GetCohort(ctx, cohort.ID)
	require.NoError(t, err)
	pages, err := s.Pages(ctx, c.ID, 0, c.PageSpan)
	require.NoError(t, err)
	out := runRows{Entered: r.Entered, Size: c.Size, Span: c.PageSpan, Sealed: c.Sealed}
	for _, p := range pages {
		out.Pages = append(out.Pages, p.Members)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT uid FROM entries WHERE run_id = ? ORDER BY uid`, run.ID)
	require.NoError(t, err)
	for rows.Next() {
		var u int64
		require.NoError(t, rows.Scan(&u))
		out.Entries = append(out.Entries, u)
	}
	require.NoError(t, rows.Close())
	rows, err = s.r.QueryContext(ctx, `SELECT step_id, visit, cohort_id, count FROM step_entries WHERE run_id = ? ORDER BY step_id`, run.ID)
	require.NoError(t, err)
	for rows.Next() {
		var step string
		var visit, cid, n int64
		require.NoError(t, rows.Scan(&step, &visit, &cid, &n))
		require.Equal(t, c.ID, cid)
		out.StepEntries = append(out.StepEntries, fmt.Sprintf("%s/%d: %d", step, visit, n))
	}
	require.NoError(t, rows.Close())
	return out
}

// TestBeginRunEntry: one transaction leaves what BeginRun, CreateCohort,
// WriteEntryChunk, SealCohort, SetRunEntered and RecordStepEntry left, run
// twice it changes nothing, and over a run recorded before under another id
// than the entry was decided for it writes nothing and says which run.
func TestBeginRunEntry(t *testing.T) {
	members := make([]int64, 0, PageSize+7)
	for u := int64(1); u <= PageSize+7; u++ {
		members = append(members, u*3)
	}
	for _, tc := range []struct {
		name    string
		members []int64
		entries bool
	}{
		{"two pages with entries", members, true},
		{"one user without entries", []int64{42}, false},
		{"nobody", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachStore(t, func(t *testing.T, s *SQLite) {
				ctx := context.Background()
				span := max(4, int64(len(tc.members)+PageSize-1)/PageSize)

				// The six calls of the path before it.
				old, err := s.BeginRun(ctx, "wf/old", "c", "h", "event")
				require.NoError(t, err)
				oc, err := s.CreateCohort(ctx, fmt.Sprintf("%d/entry", old.ID), old.ID, "first", 0, time.Time{})
				require.NoError(t, err)
				chunk := EntryChunk{CanvasID: "c", RunID: old.ID, AfterUID: -1, LastUID: 1 << 62, FromPage: 0, ToPage: span, RecordEntries: tc.entries}
				for start := 0; start < len(tc.members); start += PageSize {
					chunk.Pages = append(chunk.Pages, Page{No: int64(len(chunk.Pages)), Members: tc.members[start:min(start+PageSize, len(tc.members))]})
				}
				require.NoError(t, s.WriteEntryChunk(ctx, oc.ID, chunk))
				oc, err = s.SealCohort(ctx, oc.ID, span)
				require.NoError(t, err)
				require.NoError(t, s.SetRunEntered(ctx, old.ID, oc.Size))
				if oc.Size > 0 {
					require.NoError(t, s.RecordStepEntry(ctx, old.ID, "first", 0, oc.ID, oc.Size))
				}
				want := readRunRows(t, s, old, oc)

				e := RunEntry{WorkflowID: "wf/new", CanvasID: "c", PlanHash: "h", Trigger: "event", StepID: "first",
					Members: tc.members, Pages: span, RecordEntries: tc.entries, RecordStep: true}
				run, cohort, err := s.BeginRunEntry(ctx, e)
				require.NoError(t, err)
				require.NotEqual(t, old.ID, run.ID)
				require.Equal(t, run.Entered, cohort.Size)
				require.Equal(t, int64(len(tc.members)), cohort.Size)
				require.Equal(t, want, readRunRows(t, s, run, cohort))
				recRun, recCohort, err := s.RecordedRunEntry(ctx, "wf/new")
				require.NoError(t, err)
				require.Equal(t, run.ID, recRun.ID)
				require.Equal(t, cohort.ID, recCohort.ID)
				_, _, err = s.RecordedRunEntry(ctx, "wf/none")
				require.ErrorIs(t, err, ErrNotFound)

				// Again (a retried activity), deciding differently: the sealed
				// cohort stands.
				e.Members = []int64{7}
				again, cohort2, err := s.BeginRunEntry(ctx, e)
				require.NoError(t, err)
				require.Equal(t, run.ID, again.ID)
				require.Equal(t, cohort.ID, cohort2.ID)
				require.Equal(t, want, readRunRows(t, s, again, cohort2))
			})
		})
	}
}

func TestBeginRunEntryOverARunRecordedBefore(t *testing.T) {
	eachStore(t, func(t *testing.T, s *SQLite) {
		ctx := context.Background()
		run, err := s.BeginRun(ctx, "wf/begun", "c", "h", "event")
		require.NoError(t, err)
		e := RunEntry{WorkflowID: "wf/begun", CanvasID: "c", PlanHash: "h", Trigger: "event", StepID: "first",
			Members: []int64{1, 2, 3}, Pages: 4, RecordEntries: true, RecordStep: true}
		_, _, err = s.BeginRunEntry(ctx, e)
		var redo *RedecideEntryError
		require.True(t, errors.As(err, &redo), "%v", err)
		require.Equal(t, run.ID, redo.RunID)
		last, err := s.LastEntries(ctx, "c", 0, []int64{1, 2, 3})
		require.NoError(t, err)
		require.Empty(t, last, "nothing is written for a stale decision")

		e.DecidedFor = run.ID
		got, cohort, err := s.BeginRunEntry(ctx, e)
		require.NoError(t, err)
		require.Equal(t, run.ID, got.ID)
		require.Equal(t, int64(3), cohort.Size)
		require.True(t, cohort.Sealed)
		rows := readRunRows(t, s, got, cohort)
		require.Equal(t, []int64{1, 2, 3}, rows.Entries)
		require.Equal(t, []string{"first/0: 3"}, rows.StepEntries)
	})
}

// BenchmarkEventRunBegin is the store's part of beginning an entry window's
// run of 400 new users (a window's median at 2,000 events/s): the six write
// transactions of BeginRun and Enter before ADR 044, and BeginRunEntry's one;
// without entries (bench events' canvas: reentry always) and with them (an
// event canvas's default, reentry never: the old path's WriteEntryChunk
// deletes the run's earlier entries over every entry of the canvas, so
// its cost grows with the runs before it — hence a fixed run count).
//
//	go test ./internal/store -run '^$' -bench EventRunBegin -benchtime 300x -count 3
func BenchmarkEventRunBegin(b *testing.B) {
	const users = 400
	// Each run's users are new ones, as the bench's events are.
	membersOf := func(run int) []int64 {
		out := make([]int64, users)
		for i := range out {
			out[i] = int64(run*users + i + 1)
		}
		return out
	}
	span := max(4, int64(users+PageSize-1)/PageSize)
	pagesOf := func(members []int64) []Page {
		var out []Page
		for start := 0; start < users; start += PageSize {
			out = append(out, Page{No: int64(len(out)), Members: members[start:min(start+PageSize, users)]})
		}
		return out
	}
	ctx := context.Background()
	for _, entries := range []bool{false, true} {
		b.Run(fmt.Sprintf("six-transactions/entries=%v", entries), func(b *testing.B) {
			s, err := OpenSQLite(ctx, b.TempDir()+"/huabu.db")
			require.NoError(b, err)
			defer s.Close()
			b.ReportAllocs()
			defer reportCPU(b)()
			for i := 0; b.Loop(); i++ {
				run, err := s.BeginRun(ctx, fmt.Sprintf("wf/%d", i), "c", "h", "event")
				require.NoError(b, err)
				c, err := s.CreateCohort(ctx, fmt.Sprintf("%d/entry", run.ID), run.ID, "first", 0, time.Time{})
				require.NoError(b, err)
				require.NoError(b, s.WriteEntryChunk(ctx, c.ID, EntryChunk{CanvasID: "c", RunID: run.ID, AfterUID: -1, LastUID: 1 << 62, ToPage: span, Pages: pagesOf(membersOf(i)), RecordEntries: entries}))
				c, err = s.SealCohort(ctx, c.ID, span)
				require.NoError(b, err)
				require.NoError(b, s.SetRunEntered(ctx, run.ID, c.Size))
				require.NoError(b, s.RecordStepEntry(ctx, run.ID, "first", 0, c.ID, c.Size))
			}
		})
		b.Run(fmt.Sprintf("one-transaction/entries=%v", entries), func(b *testing.B) {
			s, err := OpenSQLite(ctx, b.TempDir()+"/huabu.db")
			require.NoError(b, err)
			defer s.Close()
			b.ReportAllocs()
			defer reportCPU(b)()
			for i := 0; b.Loop(); i++ {
				_, _, err := s.BeginRunEntry(ctx, RunEntry{WorkflowID: fmt.Sprintf("wf/%d", i), CanvasID: "c", PlanHash: "h", Trigger: "event", StepID: "first",
					Members: membersOf(i), Pages: span, RecordEntries: entries, RecordStep: true})
				require.NoError(b, err)
			}
		})
	}
}

// reportCPU reports the process's CPU time (user and system) per operation
// from its call to the call of what it returns: a measure the other
// processes of a shared machine disturb less than ns/op.
func reportCPU(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() {
		b.ReportMetric(float64((cpu()-start).Microseconds())/float64(b.N), "cpu-µs/op")
	}
}
