package directory

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/huabu/huabu/internal/channels/wecom"
	"github.com/huabu/huabu/internal/outbound"
	"github.com/huabu/huabu/internal/store"
)

// WeCom is what the directory sync reads from WeCom; *wecom.API has it.
type WeCom interface {
	Departments(ctx context.Context) ([]wecom.Department, error)
	DepartmentMembers(ctx context.Context, departmentID int) ([]wecom.Member, error)
	ContactsOf(ctx context.Context, staff []string) ([]wecom.Follow, error)
}

// Store is where the sync writes; *store.SQLite has it.
type Store interface {
	UpsertStaff(ctx context.Context, staff []store.Staff) error
	ContactsActive(ctx context.Context, pairs []outbound.ContactPair) error
	LinkCustomers(ctx context.Context, links []store.CustomerLink) (int, error)
}

// SyncSummary is what a sync found.
type SyncSummary struct {
	Departments int           `json:"departments"`
	Staff       int           `json:"staff"`
	Contacts    int           `json:"contacts"`  // (staff member, customer) pairs
	Customers   int           `json:"customers"` // distinct customers linked to an owner
	NewProfiles int           `json:"new_profiles"`
	Elapsed     time.Duration `json:"elapsed"`
}

// SyncWeCom copies the WeCom address book into the staff directory — grid =
// the member's main department, leader = their direct leader (直属上级), else
// their department's leader, else the nearest parent department's — then
// every staff member's customers into the contact book, linking each
// customer to a profile with the staff member who added them first as
// owner (where the profile has no owner yet). Callbacks keep both current
// between syncs.
func SyncWeCom(ctx context.Context, api WeCom, st Store) (SyncSummary, error) {
	start := time.Now()
	var sum SyncSummary
	depts, err := api.Departments(ctx)
	if err != nil {
		return sum, err
	}
	sum.Departments = len(depts)
	byID := make(map[int]wecom.Department, len(depts))
	for _, d := range depts {
		byID[d.ID] = d
	}
	sort.Slice(depts, func(i, j int) bool { return depts[i].ID < depts[j].ID })
	members := map[string]wecom.Member{}
	var ids []string
	for _, d := range depts {
		list, err := api.DepartmentMembers(ctx, d.ID)
		if err != nil {
			return sum, err
		}
		for _, m := range list {
			if _, ok := members[m.UserID]; !ok {
				members[m.UserID] = m
				ids = append(ids, m.UserID)
			}
		}
	}
	sort.Strings(ids)
	staff := make([]store.Staff, 0, len(ids))
	for _, id := range ids {
		m := members[id]
		main := m.MainDepartment
		if main == 0 && len(m.Departments) > 0 {
			main = m.Departments[0]
		}
		staff = append(staff, store.Staff{UserID: id, Name: m.Name, Grid: byID[main].Name, Leader: leaderOf(m, main, byID)})
	}
	if err := st.UpsertStaff(ctx, staff); err != nil {
		return sum, err
	}
	sum.Staff = len(staff)

	// All follows first: a customer's owner is whoever added them first,
	// across every batch of staff members.
	first := map[string]wecom.Follow{}
	var pairs []outbound.ContactPair
	for lo := 0; lo < len(ids); lo += 100 {
		follows, err := api.ContactsOf(ctx, ids[lo:min(lo+100, len(ids))])
		if err != nil {
			return sum, err
		}
		for _, f := range follows {
			pairs = append(pairs, outbound.ContactPair{Staff: f.Staff, ExternalUserID: f.ExternalUserID})
			if cur, ok := first[f.ExternalUserID]; !ok || (!f.CreateTime.IsZero() && f.CreateTime.Before(cur.CreateTime)) {
				first[f.ExternalUserID] = f
			}
		}
	}
	for lo := 0; lo < len(pairs); lo += 1000 {
		if err := st.ContactsActive(ctx, pairs[lo:min(lo+1000, len(pairs))]); err != nil {
			return sum, err
		}
	}
	sum.Contacts = len(pairs)
	externals := make([]string, 0, len(first))
	for e := range first {
		externals = append(externals, e)
	}
	sort.Strings(externals)
	for lo := 0; lo < len(externals); lo += 1000 {
		var links []store.CustomerLink
		for _, e := range externals[lo:min(lo+1000, len(externals))] {
			f := first[e]
			links = append(links, store.CustomerLink{Staff: f.Staff, ExternalUserID: e, State: f.State, Name: f.Name})
		}
		n, err := st.LinkCustomers(ctx, links)
		if err != nil {
			return sum, err
		}
		sum.NewProfiles += n
	}
	sum.Customers = len(externals)
	sum.Elapsed = time.Since(start)
	return sum, nil
}

// leaderOf picks a member's leader: the first direct leader, else a leader
// of their main department (not themselves), else of the nearest parent.
func leaderOf(m wecom.Member, main int, byID map[int]wecom.Department) string {
	for _, l := range m.DirectLeaders {
		if l != "" && l != m.UserID {
			return l
		}
	}
	seen := map[int]bool{}
	for id := main; id != 0 && !seen[id]; id = byID[id].ParentID {
		seen[id] = true
		leaders := byID[id].Leaders
		if i := slices.IndexFunc(leaders, func(l string) bool { return l != "" && l != m.UserID }); i >= 0 {
			return leaders[i]
		}
	}
	return ""
}
