package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestStaffCohortsKeepTheirOwnTasks: two cohorts of one run reach one staff
// step; each has its own customers, parts and tasks, and finishing the first
// leaves the second's tasks and customers alone. Rows from before migration
// 024 (cohort 0) make every cohort of that step share them, as they did.
func TestStaffCohortsKeepTheirOwnTasks(t *testing.T) {
	eachStore(t, testStaffCohortsKeepTheirOwnTasks)
}

func testStaffCohortsKeepTheirOwnTasks(t *testing.T, s *SQLite) {
	ctx := context.Background()
	_, err := s.UpsertProfiles(ctx, []ProfileUpdate{{ID: "a", Patch: []byte(`{}`)}, {ID: "b", Patch: []byte(`{}`)}, {ID: "c", Patch: []byte(`{}`)}})
	require.NoError(t, err)
	uids, err := s.UIDs(ctx, []string{"a", "b", "c"})
	require.NoError(t, err)
	const run, step = 1, "task"

	for _, c := range []struct {
		cohort int64
		users  []string
	}{{11, []string{"a", "b"}}, {12, []string{"c"}}} {
		scope, err := s.StaffScope(ctx, run, step, c.cohort)
		require.NoError(t, err)
		require.Equal(t, c.cohort, scope)
		var rows []StaffCustomer
		for _, u := range c.users {
			rows = append(rows, StaffCustomer{Cohort: scope, UID: uids[u], Staff: "lina", ExternalUserID: "wm" + u, Status: CustomerAssigned})
		}
		require.NoError(t, s.AssignStaffCustomers(ctx, run, step, rows))
		require.NoError(t, s.SplitStaffParts(ctx, run, step, scope, 10000))
	}
	as, err := s.StaffAssignments(ctx, run, step)
	require.NoError(t, err)
	require.Equal(t, []StaffAssignment{{Cohort: 11, Staff: "lina", Customers: 2}, {Cohort: 12, Staff: "lina", Customers: 1}}, as)

	first := StaffTaskKey{RunID: run, StepID: step, Cohort: 11, Staff: "lina"}
	second := StaffTaskKey{RunID: run, StepID: step, Cohort: 12, Staff: "lina"}
	deadline := time.Now().Add(time.Hour)
	require.NoError(t, s.EnsureStaffTasks(ctx, []StaffTask{{StaffTaskKey: first, CanvasID: "c", Kind: "customers", Customers: 2, Deadline: deadline}}))
	require.NoError(t, s.EnsureStaffTasks(ctx, []StaffTask{{StaffTaskKey: second, CanvasID: "c", Kind: "customers", Customers: 1, Deadline: deadline}}))
	ids, err := s.StaffTaskExternalIDs(ctx, first)
	require.NoError(t, err)
	require.Equal(t, []string{"wma", "wmb"}, ids)
	ids, err = s.StaffTaskExternalIDs(ctx, second)
	require.NoError(t, err)
	require.Equal(t, []string{"wmc"}, ids)

	require.NoError(t, s.SettleStaffTask(ctx, first, StaffTaskSettlement{State: StaffTaskCreated, Ref: "msg-1", At: time.Now()}))
	require.NoError(t, s.FinishStaffTasks(ctx, run, step, 11, true))
	tasks, err := s.StaffTasks(ctx, run, step)
	require.NoError(t, err)
	require.Len(t, tasks, 2)
	require.Equal(t, StaffNotDone, tasks[0].Result, "the first cohort's task is finished")
	require.Equal(t, StaffTaskNew, tasks[1].State, "the second cohort's task is untouched")
	require.Empty(t, tasks[1].Result)
	counts, err := s.StaffCustomerCounts(ctx, run, step, 12)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{CustomerAssigned: 1}, counts)

	// A step with rows from before the migration: every cohort shares them.
	require.NoError(t, s.EnsureStaffTasks(ctx, []StaffTask{{StaffTaskKey: StaffTaskKey{RunID: run, StepID: "old", Staff: "lina"}, CanvasID: "c", Kind: "customers", Deadline: deadline}}))
	scope, err := s.StaffScope(ctx, run, "old", 13)
	require.NoError(t, err)
	require.Zero(t, scope)
}

// TestStaffPartsStayWithTheirCohort: a later cohort's split into parts
// neither counts nor renumbers an earlier cohort's customers — not even
// when some of those have already left "assigned" (WeCom reported them),
// which would shift the rest into other parts and make that task's results
// miss them.
func TestStaffPartsStayWithTheirCohort(t *testing.T) {
	eachStore(t, func(t *testing.T, s *SQLite) {
		ctx := context.Background()
		ids := []string{"a", "b", "c", "d"}
		var patches []ProfileUpdate
		for _, id := range ids {
			patches = append(patches, ProfileUpdate{ID: id, Patch: []byte(`{}`)})
		}
		_, err := s.UpsertProfiles(ctx, patches)
		require.NoError(t, err)
		uids, err := s.UIDs(ctx, ids)
		require.NoError(t, err)
		const run, step, max = 1, "task", 2
		assign := func(cohort int64, users ...string) {
			var rows []StaffCustomer
			for _, u := range users {
				rows = append(rows, StaffCustomer{Cohort: cohort, UID: uids[u], Staff: "lina", ExternalUserID: "wm" + u, Status: CustomerAssigned})
			}
			require.NoError(t, s.AssignStaffCustomers(ctx, run, step, rows))
			require.NoError(t, s.SplitStaffParts(ctx, run, step, cohort, max))
		}
		assign(11, "a", "b", "c") // parts: [a b] [c]
		first := StaffTaskKey{RunID: run, StepID: step, Cohort: 11, Staff: "lina"}
		require.NoError(t, s.RecordStaffResults(ctx, first, []StaffCustomerResult{{ExternalUserID: "wma", Status: CustomerSent, SendTime: time.Now()}}))
		assign(12, "d")

		as, err := s.StaffAssignments(ctx, run, step)
		require.NoError(t, err)
		require.Equal(t, []StaffAssignment{
			{Cohort: 11, Staff: "lina", Part: 0, Customers: 1}, // b (a was sent)
			{Cohort: 11, Staff: "lina", Part: 1, Customers: 1}, // c, still in its part
			{Cohort: 12, Staff: "lina", Part: 0, Customers: 1},
		}, as)
		second := first
		second.Part = 1
		got, err := s.StaffTaskExternalIDs(ctx, second)
		require.NoError(t, err)
		require.Equal(t, []string{"wmc"}, got)
	})
}
