package activities

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/store"
)

var shanghai = time.FixedZone("CST", 8*3600)

func at(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, shanghai)
	if err != nil {
		panic(err)
	}
	return t
}

func TestNextClock(t *testing.T) {
	for _, tc := range []struct {
		clock, now, want string
	}{
		{"18:00", "2026-11-30 09:00", "2026-11-30 18:00"}, // later today
		{"18:00", "2026-11-30 18:00", "2026-12-01 18:00"}, // exactly now: tomorrow
		{"09:30", "2026-11-30 21:00", "2026-12-01 09:30"}, // passed: tomorrow
		{"00:00", "2026-12-31 23:59", "2027-01-01 00:00"}, // across the year
	} {
		require.Equal(t, at(tc.want), nextClock(tc.clock, at(tc.now), shanghai), "%s at %s", tc.clock, tc.now)
	}
	// The clock is read in the given zone, whatever zone now is in.
	require.Equal(t, at("2026-11-30 18:00"), nextClock("18:00", at("2026-11-30 09:00").UTC(), shanghai))
}

func TestStaffDeadline(t *testing.T) {
	now := at("2026-11-30 10:00")
	for _, tc := range []struct {
		name string
		task canvases.StaffTask
		want time.Time
	}{
		{"deadline_at today", canvases.StaffTask{DeadlineAt: "18:00"}, at("2026-11-30 18:00")},
		{"deadline_at tomorrow", canvases.StaffTask{DeadlineAt: "08:00"}, at("2026-12-01 08:00")},
		{"a duration", canvases.StaffTask{Deadline: canvases.Duration(3 * time.Hour)}, at("2026-11-30 13:00")},
		{"deadline_at wins", canvases.StaffTask{DeadlineAt: "12:00", Deadline: canvases.Duration(time.Hour)}, at("2026-11-30 12:00")},
		{"neither: a day", canvases.StaffTask{}, at("2026-12-01 10:00")},
	} {
		require.Equal(t, tc.want, staffDeadline(&tc.task, now, shanghai), tc.name)
	}
}

func TestStaffReminders(t *testing.T) {
	now := at("2026-11-30 10:00")
	for _, tc := range []struct {
		name     string
		remind   []string
		deadline time.Time
		want     []time.Time
	}{
		{"durations before the deadline, sorted", []string{"4h", "1h"}, at("2026-11-30 18:00"),
			[]time.Time{at("2026-11-30 11:00"), at("2026-11-30 14:00")}},
		{"none at or after the deadline", []string{"8h", "9h"}, at("2026-11-30 18:00"), nil},
		{"a clock repeats daily until the deadline", []string{"09:00"}, at("2026-12-02 12:00"),
			[]time.Time{at("2026-12-01 09:00"), at("2026-12-02 09:00")}},
		{"equal times once", []string{"2h", "12:00"}, at("2026-11-30 18:00"), []time.Time{at("2026-11-30 12:00")}},
		{"at most three within a day", []string{"1h", "2h", "3h", "4h"}, at("2026-11-30 18:00"),
			[]time.Time{at("2026-11-30 11:00"), at("2026-11-30 12:00"), at("2026-11-30 13:00")}},
		{"unreadable entries are skipped", []string{"soon", "1h"}, at("2026-11-30 18:00"), []time.Time{at("2026-11-30 11:00")}},
	} {
		task := canvases.StaffTask{Remind: tc.remind}
		require.Equal(t, tc.want, staffReminders(&task, now, tc.deadline, shanghai), tc.name)
	}
}

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"请跟进这位客户的续费", 4, "请跟进这…"},
		{"{{.user.name}}", 40, "{ {.user.name}}"}, // literal text inside a template
	} {
		require.Equal(t, tc.want, summarize(tc.in, tc.n), tc.in)
	}
}

func TestBriefTaskID(t *testing.T) {
	a := briefTaskID(store.StaffTaskKey{RunID: 7, StepID: "brief", Staff: "zhangwei"})
	require.Regexp(t, `^hb_7_[0-9a-f]{16}$`, a)
	require.Equal(t, a, briefTaskID(store.StaffTaskKey{RunID: 7, StepID: "brief", Staff: "zhangwei"}), "stable across retries")
	require.NotEqual(t, a, briefTaskID(store.StaffTaskKey{RunID: 7, StepID: "brief", Staff: "lisi"}))
	require.NotEqual(t, a, briefTaskID(store.StaffTaskKey{RunID: 8, StepID: "brief", Staff: "zhangwei"}))
}
