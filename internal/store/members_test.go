package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMembersAmongAgreesWithInCohort: the router's batch membership test
// answers what InCohort answers user by user, on pages whose uid ranges
// are disjoint (a scan) and overlapping (collections of arrivals).
func TestMembersAmongAgreesWithInCohort(t *testing.T) {
	ctx := context.Background()
	eachStore(t, func(t *testing.T, s *SQLite) {
		run, err := s.BeginRun(ctx, "wf-members", "c", "h", "manual")
		require.NoError(t, err)
		for _, tc := range []struct {
			name  string
			pages []Page
		}{
			{"disjoint", []Page{{No: 0, Members: []int64{1, 3, 5, 7}}, {No: 1, Members: []int64{10, 12, 14}}, {No: 2, Members: []int64{20, 21, 30}}}},
			{"overlapping", []Page{{No: 0, Members: []int64{2, 9, 30}}, {No: 1, Members: []int64{1, 12, 25}}, {No: 2, Members: []int64{5, 6}}}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c, err := s.CreateCohort(ctx, "k-"+tc.name, run.ID, "w", 0, time.Time{})
				require.NoError(t, err)
				require.NoError(t, s.WritePages(ctx, c.ID, tc.pages))
				var uids []int64
				for u := int64(0); u <= 32; u++ {
					uids = append(uids, u)
				}
				got, err := s.MembersAmong(ctx, c.ID, uids)
				require.NoError(t, err)
				want := map[int64]bool{}
				for _, p := range tc.pages {
					for _, m := range p.Members {
						want[m] = true
					}
				}
				require.Equal(t, want, got)
				if tc.name == "disjoint" { // InCohort assumes disjoint pages
					for _, u := range uids {
						in, err := s.InCohort(ctx, c.ID, u)
						require.NoError(t, err)
						require.Equal(t, want[u], in, "uid %d", u)
					}
				}
				few, err := s.MembersAmong(ctx, c.ID, []int64{5, 13, 30})
				require.NoError(t, err)
				require.Equal(t, map[int64]bool{5: true, 30: true}, few)
			})
		}
	})
}
