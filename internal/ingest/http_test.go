package ingest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/traits"
)

const testConfig = `
http: {write_keys: [secret-key]}
profile:
  attributes: {name: string, level: string, balance: number, birthday: date}
  traits:
    orders_30d: {count: purchase, within: 30d}
    spend_90d: {sum: purchase.amount, within: 90d}
    last_order_amount: {last: purchase.amount}
    days_since_last_order: {days_since: purchase}
  rfm: {event: purchase, amount: amount, window: 365d}
events:
  purchase: {amount: number, order_id: string}
tags:
  big_spender: 'user.traits.spend_90d >= 1000'
  gold: 'user.level == "gold"'
`

// stack is the ingestion API on a real SQLite store, with the trait engine
// running and a sink that records what the engine would receive.
type stack struct {
	st     *store.SQLite
	eng    *traits.Engine
	api    *ingest.API
	srv    *httptest.Server
	mu     sync.Mutex
	events []ingest.Event
}

func newStack(t testing.TB, cfgText string) *stack {
	t.Helper()
	cfg, err := config.Parse("huabu.yaml", t.TempDir(), []byte(cfgText))
	require.NoError(t, err)
	schema, err := cfg.Schema()
	require.NoError(t, err)
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "huabu.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := &stack{st: st}
	s.eng, err = traits.New(cfg, st, log)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.eng.Run(ctx, traits.RunOptions{}); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	s.api = ingest.NewAPI(ingest.APIOptions{
		Store: st, Validator: ingest.NewValidator(schema), WriteKeys: cfg.HTTP.WriteKeys, Traits: s.eng, Logger: log,
		Sink: ingest.SinkFunc(func(ctx context.Context, evs []ingest.Event) {
			s.mu.Lock()
			s.events = append(s.events, evs...)
			s.mu.Unlock()
		}),
	})
	mux := http.NewServeMux()
	s.api.Register(mux)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *stack) sunk() []ingest.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ingest.Event(nil), s.events...)
}

// post sends a body with the write key as Basic user name.
func (s *stack) post(t testing.TB, path, body string) (int, map[string]any) {
	t.Helper()
	return s.do(t, path, body, "Basic "+base64.StdEncoding.EncodeToString([]byte("secret-key:")))
}

func (s *stack) do(t testing.TB, path, body, auth string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", s.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	require.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"), string(raw))
	require.NoError(t, json.Unmarshal(raw, &out), string(raw))
	return resp.StatusCode, out
}

func (s *stack) profile(t testing.TB, id string) map[string]any {
	t.Helper()
	require.NoError(t, s.eng.WaitCurrent(context.Background()))
	p, err := s.st.ProfileByID(context.Background(), id)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(p.Doc, &doc))
	return doc
}

func (s *stack) count(t testing.TB) (events, profiles int64) {
	t.Helper()
	events, err := s.st.CountEvents(context.Background())
	require.NoError(t, err)
	profiles, err = s.st.CountProfiles(context.Background())
	require.NoError(t, err)
	return events, profiles
}

// TestBadInputStoresNothing: every refused request is a 4xx JSON naming the
// problem, and nothing of it is stored, not even its valid messages.
func TestBadInputStoresNothing(t *testing.T) {
	s := newStack(t, testConfig)
	good := `{"type":"track","userId":"u1","event":"purchase","properties":{"amount":10}}`
	big := strings.Repeat("x", 33*1024)
	var hugeBatch strings.Builder
	hugeBatch.WriteString(`{"batch":[`)
	for i := 0; i < 40; i++ {
		if i > 0 {
			hugeBatch.WriteString(",")
		}
		fmt.Fprintf(&hugeBatch, `{"type":"track","userId":"u%d","event":"e","properties":{"pad":"%s"}}`, i, strings.Repeat("y", 14000))
	}
	hugeBatch.WriteString(`]}`)
	basic := func(key string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":")) }
	for _, tc := range []struct {
		name, path, body, auth string
		code                   int
		field, msg             string
	}{
		{"malformed JSON", "/v1/track", `{"userId":"u1","event":"purchase"`, "", 400, "", "invalid JSON"},
		{"malformed batch", "/v1/batch", `{"batch":[` + good + `,{"type":"track",}]}`, "", 400, "", "invalid JSON"},
		{"not an object", "/v1/track", `["u1"]`, "", 400, "", "must be a JSON object"},
		{"empty body", "/v1/identify", ``, "", 400, "", "body is empty"},
		{"no user", "/v1/track", `{"event":"purchase"}`, "", 400, "userId", "userId or anonymousId is required"},
		{"no user in batch", "/v1/batch", `{"batch":[` + good + `,{"type":"identify","traits":{"name":"x"}}]}`, "", 400, "batch[1].userId", "userId or anonymousId is required"},
		{"userId not a string", "/v1/identify", `{"userId":{"id":1}}`, "", 400, "userId", "must be a string"},
		{"event not a string", "/v1/track", `{"userId":"u1","event":42}`, "", 400, "event", "event must be a string"},
		{"event missing", "/v1/track", `{"userId":"u1","properties":{}}`, "", 400, "event", "event is required"},
		{"properties not an object", "/v1/batch", `{"batch":[` + good + `,{"type":"track","userId":"u2","event":"x","properties":[1,2]}]}`, "", 400, "batch[1].properties", "properties must be an object, got a list"},
		{"declared property of the wrong type", "/v1/batch", `{"batch":[` + good + `,` + good + `,{"type":"track","userId":"u2","event":"purchase","properties":{"amount":"12"}}]}`, "", 400, "batch[2].properties.amount", `expected a number, got "12"`},
		{"trait of the wrong declared type", "/v1/identify", `{"userId":"u1","traits":{"balance":"lots"}}`, "", 400, "traits.balance", `expected a number, got "lots"`},
		{"computed trait set", "/v1/identify", `{"userId":"u1","traits":{"rfm":{"r":5}}}`, "", 400, "traits.rfm", "computed by Huabu"},
		{"traits not an object", "/v1/identify", `{"userId":"u1","traits":"vip"}`, "", 400, "traits", "traits must be an object"},
		{"bad timestamp", "/v1/track", `{"userId":"u1","event":"e","timestamp":"yesterday"}`, "", 400, "timestamp", "not an RFC 3339 time"},
		{"missing type in batch", "/v1/batch", `{"batch":[{"userId":"u1","event":"e"}]}`, "", 400, "batch[0].type", "type is required"},
		{"unknown type in batch", "/v1/batch", `{"batch":[{"type":"purchase","userId":"u1"}]}`, "", 400, "batch[0].type", `unknown type "purchase"`},
		{"batch not a list", "/v1/batch", `{"batch":{"type":"track"}}`, "", 400, "batch", "must be a list"},
		{"batch missing", "/v1/batch", `{"messages":[]}`, "", 400, "batch", "batch is required"},
		{"alias without previousId", "/v1/alias", `{"userId":"u1"}`, "", 400, "previousId", "previousId is required"},
		{"oversize event", "/v1/track", `{"userId":"u1","event":"e","properties":{"pad":"` + big + `"}}`, "", 400, "", "limit is 32768 (32 KB)"},
		{"oversize event in batch", "/v1/batch", `{"batch":[` + good + `,{"type":"track","userId":"u1","event":"e","properties":{"pad":"` + big + `"}}]}`, "", 400, "batch[1]", "the limit is 32768 (32 KB)"},
		{"oversize batch", "/v1/batch", hugeBatch.String(), "", 400, "batch", "limit is 512000 (500 KB)"},
		{"no key", "/v1/track", good, "-", 401, "Authorization", "write key is required"},
		{"wrong key", "/v1/batch", `{"batch":[` + good + `]}`, basic("guess"), 401, "Authorization", "write key is required"},
		{"wrong bearer", "/v1/identify", `{"userId":"u1"}`, "Bearer guess", 401, "Authorization", "write key is required"},
		{"key as password only", "/v1/track", good, "Basic " + base64.StdEncoding.EncodeToString([]byte(":secret-key")), 401, "Authorization", "write key is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var code int
			var out map[string]any
			switch tc.auth {
			case "":
				code, out = s.post(t, tc.path, tc.body)
			case "-":
				code, out = s.do(t, tc.path, tc.body, "")
			default:
				code, out = s.do(t, tc.path, tc.body, tc.auth)
			}
			require.Equal(t, tc.code, code, out)
			field, _ := out["field"].(string)
			require.Equal(t, tc.field, field, out)
			require.Contains(t, out["error"], tc.msg)
			events, profiles := s.count(t)
			require.Zero(t, events, "nothing from a refused request is stored")
			require.Zero(t, profiles, "nothing from a refused request is stored")
		})
	}
	require.Empty(t, s.sunk())
}

func TestAcceptedRequests(t *testing.T) {
	s := newStack(t, testConfig)
	ctx := context.Background()
	day := 24 * time.Hour
	now := time.Now().UTC()
	ts := func(d time.Duration) string { return now.Add(-d).Format(time.RFC3339Nano) }

	code, out := s.post(t, "/v1/identify", `{"userId":"u1","traits":{"name":"张三","level":"gold","birthday":"1990-05-01"},"context":{"ip":"1.2.3.4"},"integrations":{"All":true}}`)
	require.Equal(t, 200, code)
	require.Equal(t, map[string]any{"success": true}, out)
	doc := s.profile(t, "u1")
	require.Equal(t, "张三", doc["name"])
	require.Equal(t, []any{"gold"}, doc["tags"], "the gold rule tagged the user")

	batch := fmt.Sprintf(`{"batch":[
		{"type":"track","messageId":"m1","userId":"u1","event":"purchase","properties":{"amount":600,"order_id":"o1"},"timestamp":%q},
		{"type":"track","messageId":"m2","userId":"u1","event":"purchase","properties":{"amount":500,"order_id":"o2"},"timestamp":%q},
		{"type":"track","messageId":"m3","userId":"u1","event":"purchase","properties":{"amount":50},"timestamp":%q},
		{"type":"page","messageId":"m4","userId":"u1","name":"首页","properties":{"path":"/"}},
		{"type":"identify","messageId":"m5","userId":"u1","traits":{"level":"silver"}},
		{"type":"group","messageId":"m6","userId":"u1","groupId":"g1"},
		{"type":"track","messageId":"m1","userId":"u1","event":"purchase","properties":{"amount":600}}
	],"sentAt":%q}`, ts(40*day), ts(10*day), ts(2*day), now.Format(time.RFC3339))
	code, out = s.post(t, "/v1/batch", batch)
	require.Equal(t, 200, code, out)
	doc = s.profile(t, "u1")
	require.Equal(t, "silver", doc["level"])
	require.Equal(t, map[string]any{"orders_30d": 2.0, "spend_90d": 1150.0, "last_order_amount": 50.0, "days_since_last_order": 2.0}, doc["traits"])
	require.Equal(t, []any{"big_spender"}, doc["tags"], "gold was removed with the level, big_spender added by the trait")
	require.Equal(t, map[string]any{"r": 1.0, "f": 1.0, "m": 1.0}, doc["rfm"], "one purchaser: every boundary is their own value")

	// The same batch again (an SDK retry): accepted, nothing stored twice.
	code, _ = s.post(t, "/v1/batch", batch)
	require.Equal(t, 200, code)
	events, err := s.st.UserEvents(ctx, "u1")
	require.NoError(t, err)
	require.Len(t, events, 7, "identify u1, m1..m6 once each")
	sunk := s.sunk()
	require.Len(t, sunk, 4, "the three purchases and the page went to the engine once")
	require.Equal(t, "purchase", sunk[0].Name)
	require.Equal(t, 600.0, sunk[0].Properties["amount"])
	require.Equal(t, now.Add(-40*day).UnixMilli(), sunk[0].Timestamp.UnixMilli())
	require.True(t, sunk[0].FromRealtime)
	require.Equal(t, "page", sunk[3].Name)
	require.Equal(t, "首页", sunk[3].Properties["name"])

	// Bearer works too, and an unknown user gets a profile on first track.
	code, _ = s.do(t, "/v1/track", `{"userId":"new","event":"app_open"}`, "Bearer secret-key")
	require.Equal(t, 200, code)
	require.Equal(t, "new", s.profile(t, "new")["id"])

	// gzip bodies, as some SDKs send them.
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	_, _ = zw.Write([]byte(`{"batch":[{"type":"track","userId":"gz","event":"app_open"}]}`))
	zw.Close()
	req, _ := http.NewRequest("POST", s.srv.URL+"/v1/batch", &zb)
	req.Header.Set("Content-Encoding", "gzip")
	req.SetBasicAuth("secret-key", "")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "gz", s.profile(t, "gz")["id"])
}

// TestAnonymousThenAlias: anonymous events wait with uid 0; an alias (or a
// message with both ids) attaches them and the anonymous traits.
func TestAnonymousThenAlias(t *testing.T) {
	s := newStack(t, testConfig)
	ctx := context.Background()
	code, _ := s.post(t, "/v1/batch", `{"batch":[
		{"type":"identify","anonymousId":"anon-1","traits":{"name":"游客","level":"gold"}},
		{"type":"track","anonymousId":"anon-1","event":"purchase","properties":{"amount":30}},
		{"type":"track","anonymousId":"anon-2","event":"purchase","properties":{"amount":70}}
	]}`)
	require.Equal(t, 200, code)
	_, profiles := s.count(t)
	require.Zero(t, profiles, "anonymous-only messages create no profile")
	require.Empty(t, s.sunk(), "the engine only sees events of known users")

	code, _ = s.post(t, "/v1/identify", `{"userId":"u9","traits":{"name":"李四"}}`)
	require.Equal(t, 200, code)
	code, _ = s.post(t, "/v1/alias", `{"previousId":"anon-1","userId":"u9"}`)
	require.Equal(t, 200, code)
	doc := s.profile(t, "u9")
	require.Equal(t, "李四", doc["name"], "the profile's own values win over anonymous ones")
	require.Equal(t, "gold", doc["level"], "anonymous traits are adopted")
	require.Equal(t, 1.0, doc["traits"].(map[string]any)["orders_30d"], "the anonymous purchase now counts")

	// Later anonymous events of an aliased id go straight to the user.
	code, _ = s.post(t, "/v1/track", `{"anonymousId":"anon-1","event":"purchase","properties":{"amount":5}}`)
	require.Equal(t, 200, code)
	require.Equal(t, 2.0, s.profile(t, "u9")["traits"].(map[string]any)["orders_30d"])
	require.Len(t, s.sunk(), 1, "only the purchase sent after the alias is live")
	require.Equal(t, "u9", s.sunk()[0].UserID)

	// A message carrying both ids aliases as well; the first mapping wins.
	code, _ = s.post(t, "/v1/batch", `{"batch":[
		{"type":"track","userId":"u10","anonymousId":"anon-2","event":"signup"},
		{"type":"track","userId":"u11","anonymousId":"anon-2","event":"signup"}
	]}`)
	require.Equal(t, 200, code)
	require.Equal(t, 1.0, s.profile(t, "u10")["traits"].(map[string]any)["orders_30d"])
	require.Equal(t, 0.0, s.profile(t, "u11")["traits"].(map[string]any)["orders_30d"])
	events, err := s.st.UserEvents(ctx, "u10")
	require.NoError(t, err)
	require.Len(t, events, 2)
}

func TestNoWriteKeysAcceptsAll(t *testing.T) {
	s := newStack(t, strings.Replace(testConfig, "http: {write_keys: [secret-key]}", "http: {write_keys: [\"${HUABU_TEST_UNSET_KEY}\"]}", 1))
	code, _ := s.do(t, "/v1/track", `{"userId":"u1","event":"e"}`, "")
	require.Equal(t, 200, code)
}
