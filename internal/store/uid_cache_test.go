package store

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAppliedEventsFollowRenamedProfiles: the applier remembers profiles'
// uids (SQLite, ADR 047), yet once a profile's id changes — forgotten here,
// or renamed by another process writing the same database — the next
// group's events for that id go to the profile that id names now, as they
// would without the cache. A group that failed leaves no uid behind.
func TestAppliedEventsFollowRenamedProfiles(t *testing.T) {
	eachStorePair(t, func(t *testing.T, a, b *SQLite) {
		ctx := context.Background()
		seq := 0
		apply := func(t *testing.T, s *SQLite, users ...string) {
			t.Helper()
			var msgs []Message
			for _, u := range users {
				seq++
				msgs = append(msgs, Message{Type: "track", MessageID: "m" + strconv.Itoa(seq), UserID: u, Name: "app_open", Properties: []byte(`{}`), Timestamp: time.Now()})
			}
			_, errs, err := s.IngestAll(ctx, []IngestRequest{{Messages: msgs, Options: IngestOptions{Realtime: true}}}, "test.applied", seq)
			require.NoError(t, err)
			require.NoError(t, errs[0])
		}
		uidOf := func(t *testing.T, id string) int64 {
			t.Helper()
			var uid int64
			require.NoError(t, a.r.QueryRowContext(ctx, `SELECT uid FROM profiles WHERE id = ?`, id).Scan(&uid))
			return uid
		}
		lastUID := func(t *testing.T) int64 {
			t.Helper()
			var uid int64
			require.NoError(t, a.r.QueryRowContext(ctx, `SELECT uid FROM events ORDER BY id DESC LIMIT 1`).Scan(&uid))
			return uid
		}

		apply(t, a, "u1", "u2")
		u1 := uidOf(t, "u1")
		apply(t, a, "u1") // from the cache on SQLite
		require.Equal(t, u1, lastUID(t))

		// Forgotten: u1 coming back is a new user.
		_, err := a.ForgetUsers(ctx, []string{"u1"})
		require.NoError(t, err)
		apply(t, a, "u1")
		require.NotEqual(t, u1, lastUID(t), "events of a forgotten id go to a new profile")
		require.Equal(t, uidOf(t, "u1"), lastUID(t))

		// Renamed by another process: a's cache knows u2, b renames it.
		u2 := uidOf(t, "u2")
		apply(t, a, "u2")
		_, err = b.w.ExecContext(ctx, `UPDATE profiles SET id = ? WHERE id = ?`, "u2-renamed", "u2")
		require.NoError(t, err)
		apply(t, a, "u2")
		require.NotEqual(t, u2, lastUID(t), "the cache forgot the renamed id")
		require.Equal(t, uidOf(t, "u2"), lastUID(t))

		// A group that fails as a whole creates no profile, and its uids are
		// not remembered: the profile created later is the one events get.
		seq++
		bad := []Message{
			{Type: "track", MessageID: "m" + strconv.Itoa(seq), UserID: "u3", Name: "app_open", Properties: []byte(`{}`), Timestamp: time.Now()},
			{Type: "identify", MessageID: "m" + strconv.Itoa(seq) + "b", UserID: "u3", Properties: []byte(`{not json`), Timestamp: time.Now()},
		}
		_, errs, err := a.IngestAll(ctx, []IngestRequest{{Messages: bad, Options: IngestOptions{Realtime: true}}}, "test.applied", seq)
		require.NoError(t, err)
		require.Error(t, errs[0])
		apply(t, a, "u3")
		require.Equal(t, uidOf(t, "u3"), lastUID(t))
	})
}
