package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCountersSurviveRetriedWrites runs every write that moves a counter
// twice — as a retried activity does after its first attempt committed and
// its completion was lost — and checks the counters against the numbers the
// rows say (RecountRun groups the ledger, exits and conversions, as Counts
// did before ADR 020).
func TestCountersSurviveRetriedWrites(t *testing.T) {
	ctx := context.Background()
	key := LedgerKey{RunID: 1, StepID: "push"}
	uids := []int64{1, 2, 3, 4, 5}
	type want struct {
		sent, unknown, pending, exited, converted int64
		failed, suppressed                        map[string]int64
	}
	for _, tc := range []struct {
		name  string
		write func(t *testing.T, s *SQLite) // runs twice
		want  want
	}{{
		name: "claim",
		write: func(t *testing.T, s *SQLite) {
			_, err := s.ClaimDeliveries(ctx, key, "sms", "a1", uids, nil)
			require.NoError(t, err)
		},
		want: want{pending: 5},
	}, {
		name: "claim then settle",
		write: func(t *testing.T, s *SQLite) {
			_, err := s.ClaimDeliveries(ctx, key, "sms", "a1", uids, nil)
			require.NoError(t, err)
			require.NoError(t, s.SettleDeliveries(ctx, key, "a1", []Settlement{
				{UID: 1, State: DeliverySent, ProviderRef: "m1"},
				{UID: 2, State: DeliverySent, ProviderRef: "m2"},
				{UID: 3, State: DeliveryFailed, Reason: "invalid_address"},
				{UID: 4, State: DeliverySuppressed, Reason: "quiet_hours"},
			}))
		},
		want: want{sent: 2, pending: 1, failed: map[string]int64{"invalid_address": 1}, suppressed: map[string]int64{"quiet_hours": 1}},
	}, {
		// The sender settles a page once, after its fallbacks; a row is
		// decided once, and a later settle of it (a retried write, a
		// confused caller) changes neither its state nor its channel.
		name: "a settled row stays as first settled",
		write: func(t *testing.T, s *SQLite) {
			_, err := s.ClaimDeliveries(ctx, key, "sms", "a1", uids, nil)
			require.NoError(t, err)
			require.NoError(t, s.SettleDeliveries(ctx, key, "a1", []Settlement{{UID: 1, State: DeliveryFailed, Reason: "timeout"}}))
			require.NoError(t, s.SettleDeliveries(ctx, key, "a1", []Settlement{{UID: 1, State: DeliverySent, Channel: "push"}}))
		},
		want: want{failed: map[string]int64{"timeout": 1}, pending: 4},
	}, {
		name: "release",
		write: func(t *testing.T, s *SQLite) {
			_, err := s.ClaimDeliveries(ctx, key, "sms", "a1", uids, nil)
			require.NoError(t, err)
			require.NoError(t, s.ReleaseDeliveries(ctx, key, "a1", []int64{4, 5}))
		},
		want: want{pending: 3},
	}, {
		name: "a second attempt finds the first one's pending rows",
		write: func(t *testing.T, s *SQLite) {
			_, err := s.ClaimDeliveries(ctx, key, "sms", "a1", uids[:3], nil)
			require.NoError(t, err)
			_, err = s.ClaimDeliveries(ctx, key, "sms", "a2", uids, nil) // 1-3 become unknown
			require.NoError(t, err)
			require.NoError(t, s.SettleDeliveries(ctx, key, "a2", []Settlement{{UID: 4, State: DeliverySent}, {UID: 1, State: DeliverySent}}))
		},
		want: want{sent: 1, unknown: 3, pending: 1},
	}, {
		name: "exits and conversions",
		write: func(t *testing.T, s *SQLite) {
			require.NoError(t, s.RecordExits(ctx, 1, "push", "exit_event", []int64{1, 2}))
			require.NoError(t, s.RecordExits(ctx, 1, "push", "exit_event", []int64{2, 3}), "first exit wins")
			require.NoError(t, s.RecordConversions(ctx, 1, []int64{1, 9}, time.Now()))
		},
		want: want{exited: 3, converted: 2},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			tc.write(t, s)
			tc.write(t, s)
			counts, converted, err := s.Counts(ctx, "", 1)
			require.NoError(t, err)
			c := counts["push"]
			if c == nil {
				c = &StepCounts{}
			}
			require.Equal(t, tc.want.sent, c.Sent, "sent")
			require.Equal(t, tc.want.unknown, c.Unknown, "unknown")
			require.Equal(t, tc.want.pending, c.Pending, "pending")
			require.Equal(t, tc.want.exited, c.Exited, "exited")
			require.Equal(t, tc.want.converted, converted, "converted")
			if tc.want.failed != nil || len(c.Failed) > 0 {
				require.Equal(t, tc.want.failed, c.Failed, "failed")
			}
			if tc.want.suppressed != nil || len(c.Suppressed) > 0 {
				require.Equal(t, tc.want.suppressed, c.Suppressed, "suppressed")
			}

			require.NoError(t, s.RecountRun(ctx, 1))
			recounted, reconverted, err := s.Counts(ctx, "", 1)
			require.NoError(t, err)
			require.Equal(t, recounted, counts, "maintained counters differ from the rows")
			require.Equal(t, reconverted, converted)
		})
	}
}

// TestStepRecipientsPages pages through who reached a step: ledger rows at
// a step that sends, cohort members at one that does not, across pages and
// visits, each user once, with user id, exit and conversion.
func TestStepRecipientsPages(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	var patches []ProfileUpdate
	var ids []string
	for i := range 45 {
		id := fmt.Sprintf("u%02d", i)
		ids = append(ids, id)
		patches = append(patches, ProfileUpdate{ID: id, Patch: []byte(`{}`)})
	}
	_, err := s.UpsertProfiles(ctx, patches)
	require.NoError(t, err)
	byID, err := s.UIDs(ctx, ids)
	require.NoError(t, err)
	var uids []int64
	for _, id := range ids {
		uids = append(uids, byID[id])
	}
	slices.Sort(uids)
	run, err := s.BeginRun(ctx, "wf/1", "promo", "h", "manual")
	require.NoError(t, err)

	// A step that sends: 40 on the first visit, 5 on the second.
	first, second := LedgerKey{RunID: run.ID, StepID: "push"}, LedgerKey{RunID: run.ID, StepID: "push", Visit: 1}
	_, err = s.ClaimDeliveries(ctx, first, "sms", "a", uids[:40], nil)
	require.NoError(t, err)
	require.NoError(t, s.SettleDeliveries(ctx, first, "a", []Settlement{{UID: uids[0], State: DeliveryFailed, Reason: "invalid_number"}, {UID: uids[1], State: DeliverySent}}))
	_, err = s.ClaimDeliveries(ctx, second, "sms", "b", uids[40:], nil)
	require.NoError(t, err)
	require.NoError(t, s.RecordExits(ctx, run.ID, "push", "exit_event", []int64{uids[1]}))
	require.NoError(t, s.RecordConversions(ctx, run.ID, []int64{uids[0], uids[44]}, time.Now()))

	// A step that does not: two cohorts (two pages, then a second visit).
	c1, err := s.CreateCohort(ctx, "c1", run.ID, "wait", 0, time.Time{})
	require.NoError(t, err)
	require.NoError(t, s.WritePages(ctx, c1.ID, []Page{{No: 0, Members: uids[:15]}, {No: 2, Members: uids[15:30]}}))
	c2, err := s.CreateCohort(ctx, "c2", run.ID, "wait", 0, time.Time{})
	require.NoError(t, err)
	require.NoError(t, s.WritePages(ctx, c2.ID, []Page{{No: 0, Members: uids[30:38]}}))
	require.NoError(t, s.RecordStepEntry(ctx, run.ID, "wait", 0, c1.ID, 30))
	require.NoError(t, s.RecordStepEntry(ctx, run.ID, "wait", 1, c2.ID, 8))

	for _, tc := range []struct {
		step  string
		pages []int // recipients per page
		total int
	}{
		{"push", []int{20, 20, 5}, 45},
		{"wait", []int{20, 18}, 38},
		{"nobody", []int{0}, 0},
	} {
		t.Run(tc.step, func(t *testing.T) {
			seen := map[string]bool{}
			var got []StepRecipient
			after := ""
			for i, want := range tc.pages {
				page, next, err := s.StepRecipients(ctx, run.ID, tc.step, after, 20)
				require.NoError(t, err)
				require.Len(t, page, want, "page %d", i)
				if i == len(tc.pages)-1 {
					require.Empty(t, next, "the last page says nothing follows")
				} else {
					require.NotEmpty(t, next)
				}
				for _, r := range page {
					key := fmt.Sprint(r.UID, "/", r.Visit)
					require.False(t, seen[key], "%s twice", key)
					seen[key] = true
					require.NotEmpty(t, r.UserID)
				}
				got = append(got, page...)
				after = next
			}
			require.Len(t, got, tc.total)
			if tc.step == "push" {
				require.Equal(t, StepRecipient{UID: uids[0], UserID: ids[0], Outcome: DeliveryFailed, Reason: "invalid_number", Channel: "sms", At: got[0].At, Converted: true}, got[0])
				require.Equal(t, DeliverySent, got[1].Outcome)
				require.Equal(t, "exit_event", got[1].Exit)
				require.Equal(t, DeliveryPending, got[2].Outcome)
				require.Equal(t, 1, got[44].Visit)
				require.True(t, got[44].Converted)
			}
			if tc.step == "wait" {
				require.Equal(t, "entered", got[0].Outcome)
				require.Equal(t, 1, got[37].Visit)
			}
		})
	}
	_, _, err = s.StepRecipients(ctx, run.ID, "push", "X1", 20)
	require.ErrorIs(t, err, ErrBadCursor)
}

// TestCanvasVersionsRecordDeploymentsOnce: a changed version is a new
// deployment (a rollback too); the same version deployed again (a restart)
// is not; a version deployed before history existed gets its row once.
func TestCanvasVersionsRecordDeploymentsOnce(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	for _, d := range []struct {
		hash, src string
		changed   bool
	}{
		{"h1", "id: promo\n", true},
		{"h1", "id: promo\n", false}, // restart
		{"h2", "id: promo\nname: two\n", true},
		{"h1", "id: promo\n", true}, // rollback
		{"h0", "id: old\n", false},  // before history: recorded once
		{"h0", "id: old\n", false},
	} {
		require.NoError(t, s.RecordCanvasVersion(ctx, CanvasVersion{CanvasID: "promo", PlanHash: d.hash, Path: "promo.yaml", Source: d.src, Author: "lina"}, d.changed))
	}
	list, err := s.CanvasVersions(ctx, "promo", 10)
	require.NoError(t, err)
	var hashes []string
	for _, v := range list {
		hashes = append(hashes, v.PlanHash)
		require.Empty(t, v.Source, "the list carries no sources")
		require.Equal(t, "lina", v.Author)
	}
	require.Equal(t, []string{"h0", "h1", "h2", "h1"}, hashes, "newest first")
	v, err := s.CanvasVersion(ctx, "promo", list[2].ID)
	require.NoError(t, err)
	require.Equal(t, "id: promo\nname: two\n", v.Source)
	_, err = s.CanvasVersion(ctx, "other", list[2].ID)
	require.ErrorIs(t, err, ErrNotFound)
}

// TestStaffTaskLinesPagesOpenAndOverdue: customers staff members still have
// to reach in open and overdue tasks, one line each, paged by keyset; done
// tasks and reached customers are not listed; reminders and escalations are
// counted per task.
func TestStaffTaskLinesPagesOpenAndOverdue(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	s.SetClock(func() time.Time { return now })
	var patches []ProfileUpdate
	var ids []string
	for i := range 30 {
		ids = append(ids, fmt.Sprintf("c%02d", i))
		patches = append(patches, ProfileUpdate{ID: ids[i], Patch: []byte(`{}`)})
	}
	_, err := s.UpsertProfiles(ctx, patches)
	require.NoError(t, err)
	byID, err := s.UIDs(ctx, ids)
	require.NoError(t, err)
	var customers []StaffCustomer
	for i, id := range ids {
		staff := []string{"lina", "zhao", "wang"}[i%3] // wang's task is done
		customers = append(customers, StaffCustomer{UID: byID[id], Staff: staff, ExternalUserID: "wm" + id, Status: CustomerAssigned})
	}
	customers[0].Status = CustomerSent // lina reached c00 already
	const run, step = 1, "sop"
	require.NoError(t, s.AssignStaffCustomers(ctx, run, step, customers))
	task := func(staff string, deadline time.Time) StaffTask {
		return StaffTask{StaffTaskKey: StaffTaskKey{RunID: run, StepID: step, Staff: staff}, CanvasID: "sop", Kind: "customers", Name: staff, Grid: "东湖",
			CreatedAt: now.Add(-2 * time.Hour), Deadline: deadline}
	}
	require.NoError(t, s.EnsureStaffTasks(ctx, []StaffTask{
		task("lina", now.Add(time.Hour)),       // open
		task("zhao", now.Add(-time.Hour)),      // overdue
		task("wang", now.Add(-30*time.Minute)), // done on time
		{StaffTaskKey: StaffTaskKey{RunID: run, StepID: "brief", Staff: "lina"}, CanvasID: "sop", Kind: "staff", CreatedAt: now.Add(-time.Hour), Deadline: now.Add(time.Hour)},
	}))
	require.NoError(t, s.MarkStaffDone(ctx, StaffTaskKey{RunID: run, StepID: step, Staff: "wang"}, now.Add(-time.Hour)))
	_, _, err = s.AddStaffReminder(ctx, StaffTaskKey{RunID: run, StepID: step, Staff: "zhao"}, now.Add(-90*time.Minute))
	require.NoError(t, err)
	require.NoError(t, s.MarkStaffEscalated(ctx, []StaffTaskKey{{RunID: run, StepID: step, Staff: "zhao"}}, now.Add(-50*time.Minute)))

	var lines []StaffTaskLine
	after := ""
	for page := 0; ; page++ {
		got, next, err := s.StaffTaskLines(ctx, "sop", 0, after, 8)
		require.NoError(t, err)
		require.LessOrEqual(t, len(got), 8)
		lines = append(lines, got...)
		if next == "" {
			break
		}
		require.Less(t, page, 5, "paging ends")
		after = next
	}
	// The brief (no customers), lina's 9 unreached customers, zhao's 10.
	require.Len(t, lines, 1+9+10)
	require.Equal(t, "brief", lines[0].StepID)
	require.Zero(t, lines[0].UID)
	seen := map[string]bool{}
	for _, l := range lines[1:] {
		require.NotEqual(t, "c00", l.UserID, "a reached customer is not listed")
		require.NotEqual(t, "wang", l.Staff, "a done task is not listed")
		require.False(t, seen[l.UserID])
		seen[l.UserID] = true
		require.Equal(t, "wm"+l.UserID, l.ExternalID)
		switch l.Staff {
		case "lina":
			require.Equal(t, "open", l.Live)
		case "zhao":
			require.Equal(t, "not_done", l.Live)
			require.Len(t, l.Reminders, 1)
			require.False(t, l.EscalatedAt.IsZero())
		}
	}
	follow, err := s.StaffFollowUpsOf(ctx, "sop", 0)
	require.NoError(t, err)
	require.Equal(t, StaffFollowUps{Reminders: 1, Escalations: 1}, follow)
	_, _, err = s.StaffTaskLines(ctx, "sop", 0, "%%%", 8)
	require.ErrorIs(t, err, ErrBadCursor)
}
