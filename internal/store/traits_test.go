package store

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func trackMsgs(user string, at time.Time, props ...string) []Message {
	var out []Message
	for i, p := range props {
		out = append(out, Message{Type: "track", MessageID: fmt.Sprintf("%s-%d-%d", user, at.UnixMilli(), i), UserID: user,
			Name: "purchase", Properties: []byte(p), Timestamp: at.Add(time.Duration(i) * time.Minute)})
	}
	return out
}

func traitTx(t *testing.T, s *SQLite, fn func(*TraitTx)) {
	t.Helper()
	require.NoError(t, s.Traits(context.Background(), func(tx *TraitTx) error { fn(tx); return nil }))
}

// TestAggregates: each aggregate over a window, with values of mixed
// types and events without the property.
func TestAggregates(t *testing.T) {
	eachStore(t, func(t *testing.T, s *SQLite) {
		ctx := context.Background()
		at := time.UnixMilli(1_000_000_000)
		_, err := s.Ingest(ctx, trackMsgs("u1", at,
			`{"amount":10,"sku":"A"}`,
			`{"amount":2.5,"sku":null}`,
			`{"amount":"7","sku":{"id":1}}`,
			`{}`,
		), IngestOptions{MarkDue: true})
		require.NoError(t, err)
		_, err = s.Ingest(ctx, []Message{{Type: "track", MessageID: "other", UserID: "u1", Name: "view", Properties: []byte(`{"amount":99}`), Timestamp: at}}, IngestOptions{})
		require.NoError(t, err)
		uids, err := s.UIDs(ctx, []string{"u1"})
		require.NoError(t, err)
		u1 := uids["u1"]
		path := `$."amount"`
		sku := `$."sku"`
		aggs := []Aggregate{
			{Fn: "count", Event: "purchase"},
			{Fn: "sum", Event: "purchase", Path: path},
			{Fn: "min", Event: "purchase", Path: path},
			{Fn: "max", Event: "purchase", Path: path},
			{Fn: "first", Event: "purchase", Path: sku},
			{Fn: "last", Event: "purchase", Path: sku},
			{Fn: "first_ts", Event: "purchase"},
			{Fn: "last_ts", Event: "purchase"},
			{Fn: "count", Event: "purchase", Since: at.Add(time.Minute).UnixMilli()},
			{Fn: "first", Event: "purchase", Path: sku, Since: at.Add(time.Minute).UnixMilli()},
			{Fn: "min", Event: "purchase", Path: path, Since: at.Add(3 * time.Minute).UnixMilli()},
			{Fn: "count", Event: "nothing"},
			{Fn: "sum", Event: "nothing", Path: path},
		}
		traitTx(t, s, func(tx *TraitTx) {
			got, err := tx.Aggregates([]int64{u1, 999}, aggs)
			require.NoError(t, err)
			require.Equal(t, []any{
				int64(4), 12.5, 2.5, int64(10), `"A"`, `{"id":1}`,
				at.UnixMilli(), at.Add(3 * time.Minute).UnixMilli(),
				int64(3), `{"id":1}`, nil,
				int64(0), 0.0,
			}, got[u1])
			require.Equal(t, []any{int64(0), 0.0, nil, nil, nil, nil, nil, nil, int64(0), nil, nil, int64(0), 0.0}, got[999], "a user with no events")
		})
	})
}

// TestDirtyAndDue: ingest marks users dirty; SetDue clears the mark and
// schedules; Due pages by time.
func TestDirtyAndDue(t *testing.T) {
	eachStore(t, func(t *testing.T, s *SQLite) {
		ctx := context.Background()
		at := time.UnixMilli(5_000_000)
		res, err := s.Ingest(ctx, append(trackMsgs("a", at, `{}`), trackMsgs("b", at, `{}`)...), IngestOptions{MarkDue: true})
		require.NoError(t, err)
		require.Len(t, res.Touched, 2)
		_, err = s.Ingest(ctx, trackMsgs("c", at, `{}`), IngestOptions{})
		require.NoError(t, err)
		uids, err := s.UIDs(ctx, []string{"a", "b", "c"})
		require.NoError(t, err)
		a, b, c := uids["a"], uids["b"], uids["c"]
		n, err := s.CountDue(ctx, 0)
		require.NoError(t, err)
		require.Equal(t, int64(2), n, "without MarkDue nothing is marked")

		traitTx(t, s, func(tx *TraitTx) {
			dirty, err := tx.Dirty(10)
			require.NoError(t, err)
			require.Equal(t, []int64{a, b}, dirty)
			dirty, err = tx.Dirty(1)
			require.NoError(t, err)
			require.Equal(t, []int64{a}, dirty)
			require.NoError(t, tx.SetDue([]Due{{UID: a, At: 300}, {UID: b, At: 100}, {UID: c, At: 200}}))
			dirty, err = tx.Dirty(10)
			require.NoError(t, err)
			require.Empty(t, dirty)
			due, err := tx.Due(250, 10)
			require.NoError(t, err)
			require.Equal(t, []int64{b, c}, due, "oldest first, only those due")
			require.NoError(t, tx.SetDue([]Due{{UID: b, At: -1}, {UID: c, At: 400}}))
			due, err = tx.Due(1000, 10)
			require.NoError(t, err)
			require.Equal(t, []int64{a, c}, due)
		})
		n, err = s.CountDue(ctx, 350)
		require.NoError(t, err)
		require.Equal(t, int64(1), n)

		all, err := s.MarkAllDue(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(3), all)
		n, err = s.CountDue(ctx, 0)
		require.NoError(t, err)
		require.Equal(t, int64(3), n)
	})
}

// TestUpsertProfilesMarksDirty: imported profiles get their traits and
// auto-tags computed like identified ones.
func TestUpsertProfilesMarksDirty(t *testing.T) {
	eachStore(t, func(t *testing.T, s *SQLite) {
		ctx := context.Background()
		_, err := s.UpsertProfiles(ctx, []ProfileUpdate{{ID: "p1", Patch: []byte(`{"id":"p1"}`)}, {ID: "p2", Patch: []byte(`{"id":"p2"}`)}})
		require.NoError(t, err)
		n, err := s.CountDue(ctx, 0)
		require.NoError(t, err)
		require.Equal(t, int64(2), n)
	})
}

// TestWriteDocsAndRFM: documents are replaced, raw RFM values kept and
// removed, settings stored.
func TestWriteDocsAndRFM(t *testing.T) {
	eachStore(t, func(t *testing.T, s *SQLite) {
		ctx := context.Background()
		_, err := s.UpsertProfiles(ctx, []ProfileUpdate{{ID: "p1", Patch: []byte(`{"id":"p1"}`)}, {ID: "p2", Patch: []byte(`{"id":"p2"}`)}})
		require.NoError(t, err)
		uids, err := s.UIDs(ctx, []string{"p1", "p2"})
		require.NoError(t, err)
		p1, p2 := uids["p1"], uids["p2"]
		traitTx(t, s, func(tx *TraitTx) {
			require.NoError(t, tx.WriteDocs([]DocWrite{{UID: p1, Doc: []byte(`{"id":"p1","traits":{"n":1},"note":"引号\"和\\反斜杠"}`)}}))
			require.NoError(t, tx.SetRFM([]RFMValue{{UID: p1, LastTS: 10, Frequency: 2, Monetary: 0.1}, {UID: p2, LastTS: 20, Frequency: 1, Monetary: 1e9}}, nil))
			require.NoError(t, tx.SetRFM([]RFMValue{{UID: p1, LastTS: 11, Frequency: 3, Monetary: 0.30000000000000004}}, []int64{p2}))
			got, err := tx.RFMValuesOf([]int64{p1, p2})
			require.NoError(t, err)
			require.Equal(t, map[int64]RFMValue{p1: {UID: p1, LastTS: 11, Frequency: 3, Monetary: 0.30000000000000004}}, got)
			after, err := tx.RFMAfter(0, 10)
			require.NoError(t, err)
			require.Equal(t, []int64{p1}, after)
			require.NoError(t, tx.SetSetting("k", map[string]int{"a": 1}))
			var v map[string]int
			ok, err := tx.Setting("k", &v)
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, map[string]int{"a": 1}, v)
			require.NoError(t, tx.DeleteSetting("k"))
			ok, err = tx.Setting("k", &v)
			require.NoError(t, err)
			require.False(t, ok)
		})
		row, err := s.ProfileByID(ctx, "p1")
		require.NoError(t, err)
		var doc map[string]any
		require.NoError(t, json.Unmarshal(row.Doc, &doc))
		require.Equal(t, map[string]any{"id": "p1", "traits": map[string]any{"n": 1.0}, "note": "引号\"和\\反斜杠"}, doc)
		var scanned []RFMValue
		require.NoError(t, s.ScanRFM(ctx, func(v RFMValue) { scanned = append(scanned, v) }))
		require.Len(t, scanned, 1)
		traitTx(t, s, func(tx *TraitTx) { require.NoError(t, tx.ClearRFM()) })
		scanned = nil
		require.NoError(t, s.ScanRFM(ctx, func(v RFMValue) { scanned = append(scanned, v) }))
		require.Empty(t, scanned)
	})
}
