package directory_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/channels/fakes"
	"github.com/huabu/huabu/internal/channels/wecom"
	"github.com/huabu/huabu/internal/directory"
	"github.com/huabu/huabu/internal/outbound"
	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/store/storetest"
)

// TestSyncWeComFillsDirectoryAndContactBook syncs the WeCom fake's address
// book and customer lists into each store: every member with the grid of
// their main department and their leader (direct leader, else the nearest
// department leader who is not themselves), every contact in the contact
// book, a profile for each customer Huabu had not seen, owned by the staff
// member who added them; a second sync changes nothing.
func TestSyncWeComFillsDirectoryAndContactBook(t *testing.T) {
	stores := map[string]func(t *testing.T) *store.SQLite{
		"sqlite": func(t *testing.T) *store.SQLite {
			s, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "huabu.db"))
			require.NoError(t, err)
			return s
		},
		"postgres": func(t *testing.T) *store.SQLite {
			s, err := store.OpenPostgres(context.Background(), storetest.PostgresDSN(t))
			require.NoError(t, err)
			return s
		},
	}
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			st := stores[name](t)
			t.Cleanup(func() { st.Close() })
			ctx := context.Background()

			f := fakes.NewWeCom("ww-corp", "app-secret", "1000002")
			t.Cleanup(f.Close)
			f.AddDepartment(fakes.Department{ID: 1, Name: "总部", Leaders: []string{"boss"}})
			f.AddDepartment(fakes.Department{ID: 2, Name: "华东", ParentID: 1, Leaders: []string{"lead_e"}})
			f.AddDepartment(fakes.Department{ID: 3, Name: "上海", ParentID: 2})
			f.AddMember(fakes.Member{UserID: "boss", Name: "老板", Departments: []int{1}})
			f.AddMember(fakes.Member{UserID: "lead_e", Name: "华东经理", Departments: []int{2}})
			f.AddMember(fakes.Member{UserID: "zhangwei", Name: "张伟", Departments: []int{3}})
			f.AddMember(fakes.Member{UserID: "lina", Name: "李娜", Departments: []int{3, 1}, DirectLeaders: []string{"boss"}})
			f.AddContact("zhangwei", "wm1", "王芳")
			f.AddContact("lina", "wm2", "")
			// A customer Huabu already knows keeps their profile and gets
			// an owner.
			_, err := st.UpsertProfiles(ctx, []store.ProfileUpdate{{ID: "u-known", Patch: []byte(`{"name":"刘洋","wecom_external_userid":"wm2"}`)}})
			require.NoError(t, err)

			api, err := wecom.NewAPI(map[string]any{"corp_id": "ww-corp", "agent_id": 1000002, "secret": "app-secret", "base_url": f.URL(), "timeout": "2s"},
				channels.Deps{HTTP: &http.Client{Timeout: 10 * time.Second}, Logger: slog.New(slog.DiscardHandler), Now: time.Now})
			require.NoError(t, err)

			sum, err := directory.SyncWeCom(ctx, api, st)
			require.NoError(t, err)
			sum.Elapsed = 0
			require.Equal(t, directory.SyncSummary{Departments: 3, Staff: 4, Contacts: 2, Customers: 2, NewProfiles: 1}, sum)

			staff, err := st.StaffByIDs(ctx, []string{"boss", "lead_e", "zhangwei", "lina"})
			require.NoError(t, err)
			leaders := map[string][2]string{}
			for id, s := range staff {
				leaders[id] = [2]string{s.Grid, s.Leader}
			}
			require.Equal(t, map[string][2]string{
				"boss":     {"总部", ""},
				"lead_e":   {"华东", "boss"},   // their department's leader is themselves: the parent's
				"zhangwei": {"上海", "lead_e"}, // 上海 has no leader: 华东's
				"lina":     {"上海", "boss"},   // direct leader first
			}, leaders)

			screen, err := st.ScreenContacts(ctx, []outbound.ContactPair{{Staff: "zhangwei", ExternalUserID: "wm1"}, {Staff: "lina", ExternalUserID: "wm2"}}, time.Now())
			require.NoError(t, err)
			require.Empty(t, screen.Unreachable, "synced contacts are reachable")

			uids, err := st.UIDs(ctx, []string{"wm1", "u-known"})
			require.NoError(t, err)
			require.Len(t, uids, 2, "wm1 got a profile under its external userid; wm2 is u-known's")
			rows, err := st.Profiles(ctx, []int64{uids["wm1"], uids["u-known"]})
			require.NoError(t, err)
			docs := map[string]map[string]any{}
			for _, r := range rows {
				var d map[string]any
				require.NoError(t, json.Unmarshal(r.Doc, &d))
				docs[r.ID] = d
			}
			require.Equal(t, "zhangwei", docs["wm1"]["owner"])
			require.Equal(t, "王芳", docs["wm1"]["name"])
			require.Equal(t, "lina", docs["u-known"]["owner"])
			require.Equal(t, "刘洋", docs["u-known"]["name"])

			again, err := directory.SyncWeCom(ctx, api, st)
			require.NoError(t, err)
			require.Zero(t, again.NewProfiles, "a second sync creates no profiles")
			require.Equal(t, sum.Staff, again.Staff)
		})
	}
}
