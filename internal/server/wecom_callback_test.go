package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/channels/fakes"
	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/server"
	"github.com/huabu/huabu/internal/store"
)

// testAESKey is a 43-character EncodingAESKey (32 bytes, base64 without "=").
var testAESKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))[:43]

type sinkRecorder struct {
	mu     sync.Mutex
	events []ingest.Event
}

func (s *sinkRecorder) Events(_ context.Context, evs []ingest.Event) {
	s.mu.Lock()
	s.events = append(s.events, evs...)
	s.mu.Unlock()
}

func (s *sinkRecorder) all() []ingest.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ingest.Event(nil), s.events...)
}

type callbackEnv struct {
	st     *store.SQLite
	sink   *sinkRecorder
	sender *fakes.CallbackSender
	srv    *httptest.Server
}

func newCallbackEnv(t *testing.T) *callbackEnv {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "huabu.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	sink := &sinkRecorder{}
	cb, err := server.NewWeComCallback(server.WeComCallbackConfig{Token: "cb-token", AESKey: testAESKey, CorpID: "ww-corp"},
		st, server.IngestRecorder{Store: st, Sink: sink}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	h := server.New(nil, slog.New(slog.DiscardHandler), nil)
	h.Handle("GET /wecom/callback", cb)
	h.Handle("POST /wecom/callback", cb)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &callbackEnv{st: st, sink: sink, srv: srv,
		sender: &fakes.CallbackSender{URL: srv.URL + "/wecom/callback", Token: "cb-token", AESKey: testAESKey, CorpID: "ww-corp", AgentID: "1000002"}}
}

func apiError(t *testing.T, body string) server.APIError {
	var e server.APIError
	require.NoError(t, json.Unmarshal([]byte(body), &e), body)
	return e
}

func TestWeComCallbackURLVerification(t *testing.T) {
	e := newCallbackEnv(t)
	code, body, err := e.sender.VerifyURL(context.Background(), "echo-1234567890")
	require.NoError(t, err)
	require.Equal(t, 200, code, body)
	require.Equal(t, "echo-1234567890", body)

	bad := *e.sender
	bad.Token = "wrong"
	code, body, err = bad.VerifyURL(context.Background(), "echo")
	require.NoError(t, err)
	require.Equal(t, 403, code)
	require.Equal(t, "msg_signature", apiError(t, body).Field)
}

func TestWeComCallbackContactAdded(t *testing.T) {
	e := newCallbackEnv(t)
	ctx := context.Background()
	// A known customer without an owner yet.
	_, err := e.st.UpsertProfiles(ctx, []store.ProfileUpdate{{ID: "u1", Patch: []byte(`{"name":"徐静","wecom_external_userid":"wmEXT1"}`)}})
	require.NoError(t, err)
	at := time.Now()
	code, body, err := e.sender.Send(ctx, fakes.ContactAddedEvent("ww-corp", "zhangwei", "wmEXT1", "qr-store-7", "WELCOME1", at))
	require.NoError(t, err)
	require.Equal(t, 200, code, body)
	require.Equal(t, "success", body)

	c, err := e.st.GetContact(ctx, "zhangwei", "wmEXT1")
	require.NoError(t, err)
	require.Equal(t, store.ContactActive, c.State)
	require.Equal(t, "WELCOME1", c.WelcomeCode)
	require.WithinDuration(t, time.Now().Add(server.WelcomeWindow), c.WelcomeExpires, 2*time.Second)
	p, err := e.st.ProfileByID(ctx, "u1")
	require.NoError(t, err)
	require.Contains(t, string(p.Doc), `"owner":"zhangwei"`)

	evs := e.sink.all()
	require.Len(t, evs, 1)
	require.Equal(t, "wecom.contact_added", evs[0].Name)
	require.Equal(t, "u1", evs[0].UserID)
	require.Equal(t, map[string]any{"staff": "zhangwei", "customer": "wmEXT1", "state": "qr-store-7", "welcome_code": "WELCOME1"}, evs[0].Properties)

	// A customer nobody knew: a profile named by the external userid.
	code, _, err = e.sender.Send(ctx, fakes.ContactAddedEvent("ww-corp", "lina", "wmNEW", "", "", at))
	require.NoError(t, err)
	require.Equal(t, 200, code)
	p, err = e.st.ProfileByID(ctx, "wmNEW")
	require.NoError(t, err)
	require.Contains(t, string(p.Doc), `"owner":"lina"`)
	require.Len(t, e.sink.all(), 2)
}

// TestWeComCallbackRejects: a bad signature, a changed ciphertext, a replay,
// an old timestamp and another corp's message are refused, and nothing of
// them is processed.
func TestWeComCallbackRejects(t *testing.T) {
	e := newCallbackEnv(t)
	ctx := context.Background()
	event := fakes.ContactAddedEvent("ww-corp", "zhangwei", "wmEXT9", "", "W9", time.Now())
	post := func(s fakes.Signed) (int, server.APIError) {
		code, body, err := e.sender.Post(ctx, s)
		require.NoError(t, err)
		if code == 200 {
			return code, server.APIError{}
		}
		return code, apiError(t, body)
	}

	signed, err := e.sender.Sign(event, time.Now(), fakes.NewNonce())
	require.NoError(t, err)
	tampered := fakes.Signed{Query: url.Values{}, Body: signed.Body}
	for k, v := range signed.Query {
		tampered.Query[k] = v
	}
	sig := []byte(signed.Query.Get("msg_signature"))
	sig[0] ^= 1
	tampered.Query.Set("msg_signature", string(sig))
	code, apiErr := post(tampered)
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "msg_signature", apiErr.Field)

	// The ciphertext changed under a valid signature of the original.
	other, err := e.sender.Sign(fakes.ContactAddedEvent("ww-corp", "mallory", "wmEXT9", "", "", time.Now()), time.Now(), signed.Query.Get("nonce"))
	require.NoError(t, err)
	swapped := fakes.Signed{Query: signed.Query, Body: other.Body}
	code, apiErr = post(swapped)
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "msg_signature", apiErr.Field)

	// Signed by someone with the token but for another corp.
	foreign := *e.sender
	foreign.CorpID = "ww-other"
	fs, err := foreign.Sign(event, time.Now(), fakes.NewNonce())
	require.NoError(t, err)
	code, apiErr = post(fs)
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "Encrypt", apiErr.Field)

	// An old callback, correctly signed.
	old, err := e.sender.Sign(event, time.Now().Add(-10*time.Minute), fakes.NewNonce())
	require.NoError(t, err)
	code, apiErr = post(old)
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "timestamp", apiErr.Field)

	_, err = e.st.GetContact(ctx, "zhangwei", "wmEXT9")
	require.ErrorIs(t, err, store.ErrNotFound, "nothing was processed")
	require.Empty(t, e.sink.all())

	// The genuine one goes through once; its replay does not.
	code, _ = post(signed)
	require.Equal(t, 200, code)
	code, apiErr = post(signed)
	require.Equal(t, http.StatusConflict, code)
	require.Equal(t, "nonce", apiErr.Field)
	require.Len(t, e.sink.all(), 1)

	// Not a WeCom envelope at all.
	resp, err := http.Post(e.sender.URL+"?"+signed.Query.Encode(), "text/xml", strings.NewReader("hello"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

func TestWeComCallbackContactRemovedAndCardAck(t *testing.T) {
	e := newCallbackEnv(t)
	ctx := context.Background()
	_, err := e.st.UpsertProfiles(ctx, []store.ProfileUpdate{{ID: "u1", Patch: []byte(`{"owner":"zhangwei","wecom_external_userid":"wmEXT1"}`)}})
	require.NoError(t, err)
	code, _, err := e.sender.Send(ctx, fakes.ContactRemovedEvent("ww-corp", "del_follow_user", "zhangwei", "wmEXT1", time.Now()))
	require.NoError(t, err)
	require.Equal(t, 200, code)
	c, err := e.st.GetContact(ctx, "zhangwei", "wmEXT1")
	require.NoError(t, err)
	require.Equal(t, store.ContactRemovedByCustomer, c.State)
	evs := e.sink.all()
	require.Len(t, evs, 1)
	require.Equal(t, "wecom.contact_removed", evs[0].Name)
	require.Equal(t, "customer", evs[0].Properties["by"])

	// A staff brief's confirm button.
	k := store.StaffTaskKey{RunID: 7, StepID: "brief", Staff: "lina"}
	require.NoError(t, e.st.EnsureStaffTasks(ctx, []store.StaffTask{{StaffTaskKey: k, CanvasID: "c", Kind: "staff", Deadline: time.Now().Add(time.Hour)}}))
	require.NoError(t, e.st.SettleStaffTask(ctx, k, store.StaffTaskSettlement{State: store.StaffTaskCreated, Ref: "hb_7_card"}))
	// Someone else's click does not count.
	code, _, err = e.sender.Send(ctx, fakes.CardClickedEvent("ww-corp", "1000002", "zhangwei", "hb_7_card", "ack", time.Now()))
	require.NoError(t, err)
	require.Equal(t, 200, code)
	tasks, err := e.st.StaffTasks(ctx, 7, "brief")
	require.NoError(t, err)
	require.True(t, tasks[0].DoneAt.IsZero())
	code, _, err = e.sender.Send(ctx, fakes.CardClickedEvent("ww-corp", "1000002", "lina", "hb_7_card", "ack", time.Now()))
	require.NoError(t, err)
	require.Equal(t, 200, code)
	tasks, err = e.st.StaffTasks(ctx, 7, "brief")
	require.NoError(t, err)
	require.False(t, tasks[0].DoneAt.IsZero())
}
