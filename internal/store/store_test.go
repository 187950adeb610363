package store

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/outbound"
)

func open(t *testing.T) *SQLite {
	t.Helper()
	s, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "huabu.db"))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPackMembers(t *testing.T) {
	for _, uids := range [][]int64{{}, {1}, {1, 2, 3}, {5, 900, 901, 1 << 40}} {
		got, err := UnpackMembers(PackMembers(uids))
		require.NoError(t, err)
		require.Equal(t, len(uids), len(got))
		for i := range uids {
			require.Equal(t, uids[i], got[i])
		}
	}
	got, err := UnpackMembers(PackMembers([]int64{9, 3, 5}))
	require.NoError(t, err)
	require.Equal(t, []int64{3, 5, 9}, got, "members are stored sorted")
	dense := make([]int64, PageSize)
	for i := range dense {
		dense[i] = int64(100000 + i)
	}
	require.Less(t, len(PackMembers(dense)), 1010, "a dense page is about a byte a member")
	_, err = UnpackMembers([]byte{0xff})
	require.Error(t, err)
}

func TestMigrationsAreIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huabu.db")
	s, err := OpenSQLite(context.Background(), path)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	s, err = OpenSQLite(context.Background(), path)
	require.NoError(t, err)
	require.NoError(t, s.Close())
}

func TestUpsertProfilesMergesLikeIdentify(t *testing.T) {
	eachStore(t, func(t *testing.T, s *SQLite) {
		ctx := context.Background()
		_, err := s.UpsertProfiles(ctx, []ProfileUpdate{
			{ID: "u1", Patch: []byte(`{"id":"u1","name":"张三","tags":["a"],"city":"上海"}`)},
			{ID: "u2", Patch: []byte(`{"id":"u2","name":"李四"}`)},
		})
		require.NoError(t, err)
		_, err = s.UpsertProfiles(ctx, []ProfileUpdate{{ID: "u1", Patch: []byte(`{"id":"u1","city":"北京","tags":["b"],"name":null}`)}})
		require.NoError(t, err)
		p, err := s.ProfileByID(ctx, "u1")
		require.NoError(t, err)
		var doc map[string]any
		require.NoError(t, json.Unmarshal(p.Doc, &doc))
		require.Equal(t, map[string]any{"id": "u1", "city": "北京", "tags": []any{"b"}}, doc, "merge patch: replace, delete on null, arrays replaced")
		n, err := s.CountProfiles(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(2), n)

		require.NoError(t, s.UpdateTags(ctx, []int64{p.UID}, []string{"vip", "b"}, []string{"x"}))
		p, _ = s.ProfileByID(ctx, "u1")
		require.Equal(t, []any{"b", "vip"}, docOf(t, p.Doc)["tags"])
		uids, err := s.UIDs(ctx, []string{"u1", "u2", "nobody"})
		require.NoError(t, err)
		require.Len(t, uids, 2)
	})
}

func TestCohortPages(t *testing.T) {
	eachStore(t, func(t *testing.T, s *SQLite) {
		ctx := context.Background()
		run, err := s.BeginRun(ctx, "wf/1", "c", "h", "manual")
		require.NoError(t, err)
		again, err := s.BeginRun(ctx, "wf/1", "c", "h", "manual")
		require.NoError(t, err)
		require.Equal(t, run.ID, again.ID, "a retried BeginRun finds its run")

		c, err := s.CreateCohort(ctx, "1/entry", run.ID, "start", 0, time.Time{})
		require.NoError(t, err)
		same, err := s.CreateCohort(ctx, "1/entry", run.ID, "start", 0, time.Time{})
		require.NoError(t, err)
		require.Equal(t, c.ID, same.ID, "cohort keys make creation idempotent")
		require.NoError(t, s.WritePages(ctx, c.ID, []Page{{No: 0, Members: []int64{1, 2}}, {No: 2, Members: []int64{7}}, {No: 3}}))
		require.NoError(t, s.WritePages(ctx, c.ID, []Page{{No: 0, Members: []int64{1, 2, 3}}}), "rewriting a page replaces it")
		sealed, err := s.SealCohort(ctx, c.ID, 4)
		require.NoError(t, err)
		require.Equal(t, int64(4), sealed.Size)
		require.True(t, sealed.Sealed)
		pages, err := s.Pages(ctx, c.ID, 1, 4)
		require.NoError(t, err)
		require.Equal(t, []Page{{No: 2, Members: []int64{7}}}, pages, "empty pages are not stored")

		// A retry that now finds nobody for page 2 (they moved to another arm)
		// deletes it rather than leaving the earlier attempt's members.
		require.NoError(t, s.WritePages(ctx, c.ID, []Page{{No: 2}}))
		sealed, err = s.SealCohort(ctx, c.ID, 4)
		require.NoError(t, err)
		require.Equal(t, int64(3), sealed.Size)

		// Sealing with a smaller span than the pages written (a writer that
		// lost its cursor) still covers every page.
		require.NoError(t, s.WritePages(ctx, c.ID, []Page{{No: 7, Members: []int64{9}}}))
		sealed, err = s.SealCohort(ctx, c.ID, 0)
		require.NoError(t, err)
		require.Equal(t, int64(8), sealed.PageSpan)
		require.Equal(t, int64(4), sealed.Size)
	})
}

// TestLedgerClaimSettleRelease walks the delivery ledger through a crash
// and a retry: settled rows are never claimed again, a pending row left by
// a crashed attempt becomes unknown, released rows are claimed afresh.
func TestLedgerClaimSettleRelease(t *testing.T) {
	eachStore(t, func(t *testing.T, s *SQLite) {
		ctx := context.Background()
		uids := []int64{1, 2, 3, 4, 5}
		key := LedgerKey{RunID: 1, StepID: "push"}

		first, err := s.ClaimDeliveries(ctx, key, "sms", "attempt-1/page-0", uids, nil)
		require.NoError(t, err)
		require.ElementsMatch(t, uids, first.Mine)
		require.NoError(t, s.SettleDeliveries(ctx, key, "attempt-1/page-0", []Settlement{
			{UID: 1, State: DeliverySent, ProviderRef: "m1"},
			{UID: 2, State: DeliveryFailed, Reason: "invalid_address"},
		}))
		require.NoError(t, s.ReleaseDeliveries(ctx, key, "attempt-1/page-0", []int64{3}), "3 was rate limited: certainly not sent")
		// attempt-1 crashes here with 4 and 5 still pending.

		second, err := s.ClaimDeliveries(ctx, key, "sms", "attempt-2/page-0", uids, nil)
		require.NoError(t, err)
		require.Equal(t, []int64{3}, second.Mine, "only the released row is sent again")
		require.Equal(t, map[int64]string{1: DeliverySent, 2: DeliveryFailed, 4: DeliveryUnknown, 5: DeliveryUnknown}, second.Done)

		resumed, err := s.ClaimDeliveries(ctx, key, "sms", "attempt-2/page-0", uids, nil)
		require.NoError(t, err)
		require.Equal(t, []int64{3}, resumed.Mine, "the same attempt resumes its own pending rows")

		require.NoError(t, s.SettleDeliveries(ctx, key, "attempt-2/page-0", []Settlement{{UID: 3, State: DeliverySent, Channel: "push"}}))
		counts, _, err := s.Counts(ctx, "", 1)
		require.NoError(t, err)
		c := counts["push"]
		require.Equal(t, int64(2), c.Sent)
		require.Equal(t, map[string]int64{"invalid_address": 1}, c.Failed)
		require.Equal(t, int64(2), c.Unknown)

		// The second visit of the step (a loop) is a ledger of its own: the
		// same users are sent to again, once.
		again := LedgerKey{RunID: 1, StepID: "push", Visit: 1}
		visit2, err := s.ClaimDeliveries(ctx, again, "sms", "attempt-3/page-0", uids, nil)
		require.NoError(t, err)
		require.ElementsMatch(t, uids, visit2.Mine)
		require.NoError(t, s.SettleDeliveries(ctx, again, "attempt-3/page-0", []Settlement{{UID: 1, State: DeliverySent}, {UID: 2, State: DeliverySent}}))
		retried, err := s.ClaimDeliveries(ctx, again, "sms", "attempt-4/page-0", []int64{1, 2}, nil)
		require.NoError(t, err)
		require.Empty(t, retried.Mine, "a visit sends once")
		require.NoError(t, s.RecordStepEntry(ctx, 1, "push", 0, 9, 5))
		require.NoError(t, s.RecordStepEntry(ctx, 1, "push", 1, 9, 5), "the same cohort may come back on a loop")
		counts, _, err = s.Counts(ctx, "", 1)
		require.NoError(t, err)
		c = counts["push"]
		require.Equal(t, int64(10), c.Entered)
		require.Equal(t, int64(4), c.Sent)
		require.Len(t, c.Visits, 2)
		require.Equal(t, 1, c.Visits[0].Visit)
		require.Equal(t, int64(5), c.Visits[0].Entered)
		require.Equal(t, int64(2), c.Visits[0].Sent)
		require.Equal(t, 2, c.Visits[1].Visit)
		require.Equal(t, int64(2), c.Visits[1].Sent)
		require.Equal(t, int64(3), c.Visits[1].Pending)
	})
}

func TestOutboxAndCounts(t *testing.T) {
	eachStore(t, func(t *testing.T, s *SQLite) {
		ctx := context.Background()
		run, err := s.BeginRun(ctx, "wf/2", "promo", "h", "manual")
		require.NoError(t, err)
		require.NoError(t, s.WriteOutbox(ctx, []outbound.OutboxRecord{
			{CanvasID: "promo", RunID: fmt.Sprint(run.ID), StepID: "hello", Channel: "sms", Recipient: outbound.Recipient{UserID: "u1", Address: "13800000000"},
				Message: canvases.Message{Template: "SMS_1", Params: map[string]string{"name": "张三"}}, At: time.Now()},
		}))
		msgs, err := s.Outbox(ctx, "promo", 10)
		require.NoError(t, err)
		require.Len(t, msgs, 1)
		require.Equal(t, "13800000000", msgs[0].Address)
		require.JSONEq(t, `{"template":"SMS_1","params":{"name":"张三"}}`, string(msgs[0].Message))
		rec := func(user string) outbound.OutboxRecord {
			return outbound.OutboxRecord{CanvasID: "promo", RunID: fmt.Sprint(run.ID), StepID: "hello", Channel: "sms",
				Recipient: outbound.Recipient{UserID: user}, Message: canvases.Message{Text: "hi"}, At: time.UnixMilli(1700000000123)}
		}
		require.NoError(t, s.WriteOutbox(ctx, []outbound.OutboxRecord{rec("u2"), rec("u3")}))
		require.NoError(t, s.WriteOutbox(ctx, []outbound.OutboxRecord{{CanvasID: "other", RunID: fmt.Sprint(run.ID), StepID: "x", Channel: "sms", Recipient: outbound.Recipient{UserID: "o1"}, At: time.Now()}}))
		require.NoError(t, s.WriteOutbox(ctx, []outbound.OutboxRecord{rec("u4")}))
		after, err := s.OutboxAfter(ctx, "promo", msgs[0].ID, 2)
		require.NoError(t, err)
		require.Len(t, after, 2, "at most the limit")
		require.Equal(t, []string{"u2", "u3"}, []string{after[0].UserID, after[1].UserID}, "oldest first, after the id")
		require.True(t, time.UnixMilli(1700000000123).Equal(after[0].CreatedAt))
		rest, err := s.OutboxAfter(ctx, "promo", after[1].ID, 10)
		require.NoError(t, err)
		require.Len(t, rest, 1, "the other canvas's message is not the promo's")
		require.Equal(t, "u4", rest[0].UserID)

		require.NoError(t, s.RecordStepEntry(ctx, run.ID, "hello", 0, 9, 100))
		require.NoError(t, s.RecordStepEntry(ctx, run.ID, "hello", 0, 9, 100), "entries are idempotent per cohort")
		require.NoError(t, s.RecordCohortExit(ctx, run.ID, "hello", 9, "completed", 98))
		require.NoError(t, s.RecordExits(ctx, run.ID, "hello", "exit_event", []int64{5, 6}))
		c, err := s.CreateCohort(ctx, "x", run.ID, "hello", 0, time.Time{})
		require.NoError(t, err)
		require.NoError(t, s.WritePages(ctx, c.ID, []Page{{No: 0, Members: []int64{5, 7}}}))
		require.NoError(t, s.RecordStepEntry(ctx, run.ID, "hello", 0, c.ID, 2))
		require.NoError(t, s.RecordConversions(ctx, run.ID, []int64{5, 8}, time.Now()))
		counts, converted, err := s.Counts(ctx, "promo", 0)
		require.NoError(t, err)
		require.Equal(t, int64(102), counts["hello"].Entered)
		require.Equal(t, int64(100), counts["hello"].Exited)
		require.Equal(t, int64(2), converted)
		require.Equal(t, int64(1), counts["hello"].Converted, "user 5 entered hello and converted")
	})
}

// TestImportAdoptsWeComPlaceholder: a customer first seen on WeCom (sync or
// callback) gets a placeholder profile; importing the app's profile with the
// same external userid completes it rather than creating a second profile.
func TestImportAdoptsWeComPlaceholder(t *testing.T) {
	eachStore(t, func(t *testing.T, s *SQLite) {
		ctx := context.Background()
		_, created, err := s.LinkCustomer(ctx, CustomerLink{Staff: "lina", ExternalUserID: "wmEXT0001", Name: "徐静"})
		require.NoError(t, err)
		require.True(t, created)
		before, err := s.ScanProfiles(ctx, 0, 10)
		require.NoError(t, err)
		require.Len(t, before, 1)

		_, err = s.UpsertProfiles(ctx, []ProfileUpdate{
			{ID: "u001", Patch: []byte(`{"name":"徐静","phone":"13800130001","wecom_external_userid":"wmEXT0001"}`)},
			{ID: "u002", Patch: []byte(`{"name":"黄芳","wecom_external_userid":"wmEXT0002"}`)},
		})
		require.NoError(t, err)
		after, err := s.ScanProfiles(ctx, 0, 10)
		require.NoError(t, err)
		require.Len(t, after, 2, "u001 took over the placeholder; u002 is new")
		require.Equal(t, before[0].UID, after[0].UID)
		require.Equal(t, "u001", after[0].ID)
		require.Equal(t, "lina", docOf(t, after[0].Doc)["owner"], "what WeCom told us stays")
		require.Equal(t, "13800130001", docOf(t, after[0].Doc)["phone"])
	})
}

// TestLedgerProviderKeys: the next attempt takes over the pending rows an
// attempt left when it died: those whose provider idempotency key was
// recorded before the call are sent again with it (within the key's life),
// those it claimed for a keyed channel but never called are sent afresh,
// and the attempt that lost them can neither record keys on them nor settle
// them. On a channel without keys a pending row is unknown: maybe sent.
func TestLedgerProviderKeys(t *testing.T) {
	eachStore(t, func(t *testing.T, s *SQLite) {
		ctx := context.Background()
		now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
		s.SetClock(func() time.Time { return now })
		key := LedgerKey{RunID: 1, StepID: "push"}
		uids := []int64{1, 2, 3, 4}
		const life = 23 * time.Hour
		lives := KeyLives{"push": life}

		first, err := s.ClaimDeliveries(ctx, key, "push", "a1/p0", uids, lives)
		require.NoError(t, err)
		require.ElementsMatch(t, uids, first.Mine)
		require.Empty(t, first.Keys)
		require.NoError(t, s.RecordDeliveryKeys(ctx, key, "a1/p0", map[int64]string{1: "push:cid-A", 2: "push:cid-A", 3: "push:cid-B"}))
		// a1 dies here: 1-3 were maybe pushed under their cids; 4 was not
		// pushed at all (its call would have recorded a cid first).

		resumed, err := s.ClaimDeliveries(ctx, key, "push", "a1/p0", uids, lives)
		require.NoError(t, err)
		require.Equal(t, map[int64]string{1: "push:cid-A", 2: "push:cid-A", 3: "push:cid-B"}, resumed.Keys, "the same attempt gets its keys back")

		now = now.Add(time.Hour)
		second, err := s.ClaimDeliveries(ctx, key, "push", "a2/p0", uids, lives)
		require.NoError(t, err)
		require.ElementsMatch(t, uids, second.Mine, "all taken over")
		require.Equal(t, map[int64]string{1: "push:cid-A", 2: "push:cid-A", 3: "push:cid-B"}, second.Keys, "keyed rows are sent again with their keys")
		require.Empty(t, second.Done)

		// The attempt that lost the rows can no longer touch them.
		require.Error(t, s.RecordDeliveryKeys(ctx, key, "a1/p0", map[int64]string{1: "push:cid-C"}))
		require.NoError(t, s.SettleDeliveries(ctx, key, "a1/p0", []Settlement{{UID: 1, State: DeliveryFailed, Reason: "late"}}))
		require.NoError(t, s.SettleDeliveries(ctx, key, "a2/p0", []Settlement{{UID: 1, State: DeliverySent}, {UID: 2, State: DeliverySent}}))
		counts, _, err := s.Counts(ctx, "", 1)
		require.NoError(t, err)
		require.Equal(t, int64(2), counts["push"].Sent)
		require.Empty(t, counts["push"].Failed, "a1's late settlement changed nothing")
		require.Equal(t, int64(2), counts["push"].Pending)

		// a2 dies too. Past the key's life (JPush forgets a cid after a day) a
		// resend could push again: the keyed row becomes unknown; the row never
		// called is still sent afresh.
		now = now.Add(life)
		third, err := s.ClaimDeliveries(ctx, key, "push", "a3/p0", uids, lives)
		require.NoError(t, err)
		require.Equal(t, []int64{4}, third.Mine)
		require.Empty(t, third.Keys)
		require.Equal(t, map[int64]string{1: DeliverySent, 2: DeliverySent, 3: DeliveryUnknown}, third.Done)

		// Before a call through a channel without keys (a fallback) the mark
		// is cleared: a crash after it leaves the row unknown.
		require.NoError(t, s.RecordDeliveryKeys(ctx, key, "a3/p0", map[int64]string{4: ""}))
		fourth, err := s.ClaimDeliveries(ctx, key, "push", "a4/p0", []int64{4}, lives)
		require.NoError(t, err)
		require.Empty(t, fourth.Mine)
		require.Equal(t, DeliveryUnknown, fourth.Done[4])

		// A channel without keys never resends.
		other := LedgerKey{RunID: 1, StepID: "sms"}
		_, err = s.ClaimDeliveries(ctx, other, "sms", "b1/p0", []int64{7}, nil)
		require.NoError(t, err)
		again, err := s.ClaimDeliveries(ctx, other, "sms", "b2/p0", []int64{7}, nil)
		require.NoError(t, err)
		require.Empty(t, again.Mine)
		require.Equal(t, DeliveryUnknown, again.Done[7])
	})
}

// TestProfileReadsKeepEachDoc: each row's document is its own — the reads
// keep the driver's slices (SQLite) without copying them, which holds only
// while no driver reuses a buffer for the next row — and Profiles gives the
// same rows whether it reads a dense page's range or looks a sparse list up.
func TestProfileReadsKeepEachDoc(t *testing.T) {
	eachStore(t, func(t *testing.T, s *SQLite) {
		ctx := context.Background()
		var ups []ProfileUpdate
		for i := range 40 {
			id := fmt.Sprintf("p%02d", i)
			ups = append(ups, ProfileUpdate{ID: id, Patch: []byte(fmt.Sprintf(`{"id":%q,"pad":%q}`, id, strings.Repeat("x", i*7)))})
		}
		_, err := s.UpsertProfiles(ctx, ups)
		require.NoError(t, err)
		check := func(rows []ProfileRow) {
			t.Helper()
			for _, r := range rows {
				doc := docOf(t, r.Doc)
				require.Equal(t, r.ID, doc["id"])
				require.Len(t, doc["pad"], (int(r.ID[1]-'0')*10+int(r.ID[2]-'0'))*7, r.ID)
			}
		}
		all, err := s.ScanProfiles(ctx, 0, 100)
		require.NoError(t, err)
		require.Len(t, all, 40)
		check(all)
		uids := func(rows []ProfileRow) []int64 {
			var out []int64
			for _, r := range rows {
				out = append(out, r.UID)
			}
			return out
		}
		u := uids(all)
		for _, want := range [][]int64{
			u,                              // a whole range: read in order
			{u[3], u[1], u[2], u[7], u[5]}, // dense, out of order
			{u[0], u[39]},                  // sparse: looked up
			{u[4], u[4], u[6], 1 << 40},    // a duplicate and an unknown uid
			{u[4], u[4], u[5], u[6]},       // a duplicate, dense
		} {
			got, err := s.Profiles(ctx, want)
			require.NoError(t, err)
			check(got)
			expected := slices.Compact(slices.Sorted(slices.Values(slices.DeleteFunc(slices.Clone(want), func(x int64) bool { return x == 1<<40 }))))
			require.Equal(t, expected, uids(got))
		}
	})
}

// TestSuppressedAmong: a subject is suppressed on a channel by an entry for
// that channel or for every channel (""), not by another channel's; each
// suppressed subject is named once, however often it is asked about.
func TestSuppressedAmong(t *testing.T) {
	eachStore(t, func(t *testing.T, s *SQLite) {
		ctx := context.Background()
		_, err := s.Suppress(ctx, []Suppression{
			{Subject: UserSubject("u1"), Channel: "push", Source: SuppressAPI},
			{Subject: UserSubject("u2"), Channel: "", Source: SuppressAPI},
			{Subject: UserSubject("u3"), Channel: "sms", Source: SuppressAPI},
			{Subject: AddressSubject("13900000001"), Channel: "push", Source: SuppressAPI},
			{Subject: AddressSubject("13900000001"), Channel: "", Source: SuppressAPI},
		})
		require.NoError(t, err)
		got, err := s.SuppressedAmong(ctx, "push", []string{UserSubject("u1"), UserSubject("u2"), UserSubject("u3"), UserSubject("u4"),
			UserSubject("u1"), AddressSubject("13900000001")})
		require.NoError(t, err)
		require.Equal(t, map[string]bool{UserSubject("u1"): true, UserSubject("u2"): true, AddressSubject("13900000001"): true}, got)
		got, err = s.SuppressedAmong(ctx, "sms", []string{UserSubject("u1"), UserSubject("u3")})
		require.NoError(t, err)
		require.Equal(t, map[string]bool{UserSubject("u3"): true}, got)
		got, err = s.SuppressedAmong(ctx, "push", nil)
		require.NoError(t, err)
		require.Empty(t, got)
	})
}
