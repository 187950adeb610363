package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/acceptlog"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/store"
)

// acceptStack is the API in front of the accept log, as the engine runs it.
type acceptStack struct {
	dir     string
	st      *store.SQLite
	log     *acceptlog.Log
	srv     *httptest.Server
	applied [][]store.IngestResult
}

func openAcceptStack(t *testing.T, dir string, logOpts acceptlog.Options) *acceptStack {
	t.Helper()
	cfg, err := config.Parse("huabu.yaml", dir, []byte(testConfig))
	require.NoError(t, err)
	schema, err := cfg.Schema()
	require.NoError(t, err)
	s := &acceptStack{dir: dir}
	s.st, err = store.OpenSQLite(context.Background(), filepath.Join(dir, "huabu.db"))
	require.NoError(t, err)
	s.log, err = acceptlog.Open(filepath.Join(dir, "accept"), logOpts)
	require.NoError(t, err)
	api := ingest.NewAPI(ingest.APIOptions{
		Store: &ingest.Accepter{Log: s.log}, Validator: ingest.NewValidator(schema), WriteKeys: cfg.HTTP.WriteKeys,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	mux := http.NewServeMux()
	api.Register(mux)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.close)
	return s
}

func (s *acceptStack) close() {
	s.srv.Close()
	s.log.Close()
	s.st.Close()
}

func (s *acceptStack) applier(t *testing.T) *ingest.Applier {
	a, err := ingest.NewApplier(context.Background(), ingest.ApplierOptions{
		Log: s.log, Store: s.st, FailedDir: filepath.Join(s.dir, "failed"),
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Applied: func(r []store.IngestResult) { s.applied = append(s.applied, r) },
	})
	require.NoError(t, err)
	return a
}

func (s *acceptStack) post(t *testing.T, path, body string) (int, http.Header, string) {
	req, err := http.NewRequest("POST", s.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.SetBasicAuth("secret-key", "")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestAcceptedRequestsSurviveARestart: requests answered 200 are in the
// accept log before the store has them; a process that dies then stores
// them at its next start, exactly once, however often it restarts.
func TestAcceptedRequestsSurviveARestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openAcceptStack(t, dir, acceptlog.Options{})
	code, _, _ := s.post(t, "/v1/track", `{"userId":"u1","event":"purchase","messageId":"m1","properties":{"amount":12}}`)
	require.Equal(t, 200, code)
	code, _, _ = s.post(t, "/v1/batch", `{"batch":[
		{"type":"identify","userId":"u2","traits":{"name":"小李"},"messageId":"m2"},
		{"type":"track","userId":"u2","event":"purchase","properties":{"amount":30},"messageId":"m3"},
		{"type":"track","userId":"u1","event":"purchase","properties":{"amount":12},"messageId":"m1"}]}`)
	require.Equal(t, 200, code)
	n, err := s.st.CountEvents(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "accepted, not yet stored: no applier ran")
	s.close() // the crash: nothing applied

	for restart := 0; restart < 2; restart++ {
		s = openAcceptStack(t, dir, acceptlog.Options{})
		a := s.applier(t)
		_, err = a.ApplyAvailable(ctx)
		require.NoError(t, err)
		n, err = s.st.CountEvents(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(3), n, "three messages, one a duplicate by messageId")
		if restart == 0 {
			require.Len(t, s.applied, 1, "both requests in one transaction")
			require.Len(t, s.applied[0], 2)
			require.Equal(t, 1, s.applied[0][1].Duplicates)
		} else {
			require.Empty(t, s.applied, "nothing applied twice")
		}
		p, err := s.st.ProfileByID(ctx, "u2")
		require.NoError(t, err)
		require.Contains(t, string(p.Doc), "小李")
		require.Zero(t, s.log.Backlog())
		s.close()
	}
}

// TestRecordTheStoreRefusesIsKept: a record the store cannot take (here a
// malformed identify, which validation would never let through) does not
// stop the others of its group, and is kept in the failed directory.
func TestRecordTheStoreRefusesIsKept(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openAcceptStack(t, dir, acceptlog.Options{})
	acc := &ingest.Accepter{Log: s.log}
	ts := time.Now()
	_, err := acc.Ingest(ctx, []store.Message{{Type: "track", MessageID: "ok1", UserID: "u1", Name: "purchase", Properties: []byte(`{"amount":1}`), Timestamp: ts}}, store.IngestOptions{Realtime: true})
	require.NoError(t, err)
	_, err = acc.Ingest(ctx, []store.Message{{Type: "identify", MessageID: "bad", UserID: "u9", Properties: []byte(`{"name":`), Timestamp: ts}}, store.IngestOptions{Realtime: true})
	require.NoError(t, err)
	require.NoError(t, s.log.Append([]byte("not a record")))
	_, err = acc.Ingest(ctx, []store.Message{{Type: "track", MessageID: "ok2", UserID: "u2", Name: "purchase", Properties: []byte(`{"amount":2}`), Timestamp: ts}}, store.IngestOptions{Realtime: true})
	require.NoError(t, err)

	_, err = s.applier(t).ApplyAvailable(ctx)
	require.NoError(t, err)
	n, err := s.st.CountEvents(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), n, "the good requests around the bad ones are stored")
	kept, err := os.ReadDir(filepath.Join(dir, "failed"))
	require.NoError(t, err)
	require.Len(t, kept, 2, "the refused record and the unreadable one are kept")
	require.Zero(t, s.log.Backlog())
}

// TestFullBacklogAnswers503: when the store is far behind, the API refuses
// with 503 and Retry-After (Segment clients retry) and accepts nothing.
func TestFullBacklogAnswers503(t *testing.T) {
	ctx := context.Background()
	s := openAcceptStack(t, t.TempDir(), acceptlog.Options{MaxBacklog: 150})
	body := func(id string) string {
		return `{"userId":"u1","event":"purchase","properties":{"amount":12},"messageId":"` + id + `"}`
	}
	code, _, _ := s.post(t, "/v1/track", body("a"))
	require.Equal(t, 200, code)
	require.Greater(t, s.log.Backlog(), int64(150/3), "one record is over a third of the limit")
	require.LessOrEqual(t, s.log.Backlog(), int64(150/2), "and at most half of it")
	code, _, _ = s.post(t, "/v1/track", body("b"))
	require.Equal(t, 200, code)
	code, hdr, msg := s.post(t, "/v1/track", body("c"))
	require.Equal(t, http.StatusServiceUnavailable, code, msg)
	require.Equal(t, "2", hdr.Get("Retry-After"))
	var fe map[string]any
	require.NoError(t, json.Unmarshal([]byte(msg), &fe))
	require.Contains(t, fe["error"], "nothing was stored")

	_, err := s.applier(t).ApplyAvailable(ctx)
	require.NoError(t, err)
	n, err := s.st.CountEvents(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
	code, _, _ = s.post(t, "/v1/track", body("c"))
	require.Equal(t, 200, code, "accepted again once the store caught up")
}

// TestGroupsGrowWhileBehind: with a backlog the applier's transactions grow
// from the usual 8,000 messages up to BehindGroup, each message stored
// once and in order; once it has caught up, the next burst starts again
// at 8,000.
func TestGroupsGrowWhileBehind(t *testing.T) {
	ctx := context.Background()
	s := openAcceptStack(t, t.TempDir(), acceptlog.Options{})
	acc := &ingest.Accepter{Log: s.log}
	ts := time.Now()
	seq := 0
	burst := func(records int) {
		for r := 0; r < records; r++ {
			msgs := make([]store.Message, 1000)
			for i := range msgs {
				seq++
				msgs[i] = store.Message{Type: "track", MessageID: fmt.Sprint("m", seq), UserID: fmt.Sprint("u", seq%700),
					Name: "purchase", Properties: []byte(`{"amount":1}`), Timestamp: ts}
			}
			_, err := acc.Ingest(ctx, msgs, store.IngestOptions{Realtime: true})
			require.NoError(t, err)
		}
	}
	a, err := ingest.NewApplier(ctx, ingest.ApplierOptions{
		Log: s.log, Store: s.st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Applied:     func(r []store.IngestResult) { s.applied = append(s.applied, r) },
		BehindGroup: 20000, BehindGroupTime: time.Hour, // grow to the cap whatever the machine's speed
	})
	require.NoError(t, err)
	groups := func() []int {
		var sizes []int
		for _, g := range s.applied {
			n := 0
			for _, r := range g {
				n += r.Stored
			}
			sizes = append(sizes, n)
		}
		s.applied = nil
		return sizes
	}

	burst(50)
	_, err = a.ApplyAvailable(ctx)
	require.NoError(t, err)
	require.Equal(t, []int{8000, 20000, 20000, 2000}, groups())
	burst(10)
	_, err = a.ApplyAvailable(ctx)
	require.NoError(t, err)
	require.Equal(t, []int{8000, 2000}, groups(), "caught up: the next burst starts at the usual size")

	n, err := s.st.CountEvents(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(60000), n)
	rows, err := s.st.EventsAfter(ctx, 0, 100000)
	require.NoError(t, err)
	for i, e := range rows {
		require.Equal(t, fmt.Sprint("u", (i+1)%700), e.UserID, "stored in accept order")
	}
}

// TestRecordsGatherIntoOneTransaction (ADR 056): while the applier keeps
// up, the records appended after a group was stored wait Gather and are
// stored together; while it is behind (a full group) it does not wait.
func TestRecordsGatherIntoOneTransaction(t *testing.T) {
	// start runs an applier over a fresh accept stack; groups receives
	// each stored group's size.
	start := func(t *testing.T, gather time.Duration, before func(ingestN func(first, records, perRecord int))) (func(first, records, perRecord int), <-chan int) {
		ctx, cancel := context.WithCancel(context.Background())
		s := openAcceptStack(t, t.TempDir(), acceptlog.Options{})
		acc := &ingest.Accepter{Log: s.log}
		ingestN := func(first, records, perRecord int) {
			for r := 0; r < records; r++ {
				msgs := make([]store.Message, perRecord)
				for i := range msgs {
					id := first + r*perRecord + i
					msgs[i] = store.Message{Type: "track", MessageID: fmt.Sprint("m", id), UserID: fmt.Sprint("u", id%500),
						Name: "purchase", Properties: []byte(`{"amount":1}`), Timestamp: time.Now()}
				}
				_, err := acc.Ingest(ctx, msgs, store.IngestOptions{Realtime: true})
				require.NoError(t, err)
			}
		}
		if before != nil {
			before(ingestN)
		}
		groups := make(chan int, 100)
		a, err := ingest.NewApplier(ctx, ingest.ApplierOptions{
			Log: s.log, Store: s.st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Gather: gather,
			Applied: func(r []store.IngestResult) {
				n := 0
				for _, res := range r {
					n += res.Stored
				}
				groups <- n
			},
		})
		require.NoError(t, err)
		done := make(chan struct{})
		go func() { a.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		return ingestN, groups
	}

	t.Run("records appended while the last group gathers are stored together", func(t *testing.T) {
		ingestN, groups := start(t, 2*time.Second, nil)
		ingestN(0, 1, 1)
		require.Equal(t, 1, <-groups, "the first record, stored after its gathering")
		// The applier now gathers for 2 s before its next group: four
		// records appended meanwhile (four accept-log syncs) go together.
		ingestN(1, 4, 1)
		require.Equal(t, 4, <-groups)
	})

	t.Run("a full group is followed at once, not after the gathering", func(t *testing.T) {
		// 9,000 messages wait before the applier starts: a full group of
		// 8,000 (the applier is behind) and then the rest. Were the rest
		// gathered first, it would come an hour later.
		_, groups := start(t, time.Hour, func(ingestN func(first, records, perRecord int)) { ingestN(0, 9, 1000) })
		require.Equal(t, 8000, <-groups)
		select {
		case n := <-groups:
			require.Equal(t, 1000, n)
		case <-time.After(time.Minute):
			t.Fatal("the group after a full one waited for the gathering")
		}
	})
}
