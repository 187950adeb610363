package ingest_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/store"
)

// publicAPI serves the ingestion API on a real store with opts.
func publicAPI(t *testing.T, opts ingest.APIOptions) (*httptest.Server, *store.SQLite) {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "huabu.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	opts.Store, opts.Validator, opts.Logger = st, ingest.NewValidator(canvases.Schema{}), slog.New(slog.DiscardHandler)
	if opts.WriteKeys == nil {
		opts.WriteKeys = []string{"wk-public"}
	}
	mux := http.NewServeMux()
	ingest.NewAPI(opts).Register(mux)
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener = smallBuffers{srv.Listener}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, st
}

// smallBuffers gives accepted connections small receive buffers, as a busy
// server over a real network has: a client cannot finish an upload the
// server does not read (on loopback, megabytes of kernel buffers would hide
// that).
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(16 << 10)
	}
	return c, err
}

// TestOversizeBatchFromPlainClient: a plain HTTP/1.1 client writes a
// 650 KB batch in full, then reads the answer — a 400 JSON naming the
// field, not a reset connection — whatever the key.
func TestOversizeBatchFromPlainClient(t *testing.T) {
	srv, _ := publicAPI(t, ingest.APIOptions{})
	var b strings.Builder
	b.WriteString(`{"batch":[`)
	for i := 0; b.Len() < 650_000; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"type":"track","userId":"u%d","event":"viewed","properties":{"pad":"%s"}}`, i, strings.Repeat("x", 900))
	}
	b.WriteString(`]}`)
	body := b.String()
	for _, key := range []string{"wk-public", "not-the-key"} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		require.NoError(t, err)
		require.NoError(t, conn.(*net.TCPConn).SetWriteBuffer(16<<10))
		head := fmt.Sprintf("POST /v1/batch HTTP/1.1\r\nHost: huabu\r\nContent-Type: application/json\r\nAuthorization: Basic %s\r\nContent-Length: %d\r\n\r\n",
			base64.StdEncoding.EncodeToString([]byte(key+":")), len(body))
		_, err = conn.Write([]byte(head))
		require.NoError(t, err)
		for off := 0; off < len(body); off += 16 << 10 { // as a client on a slow link writes it
			_, err := conn.Write([]byte(body[off:min(off+16<<10, len(body))]))
			require.NoError(t, err, "the server must read the whole upload before answering (key %s, at byte %d)", key, off)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		raw, _ := io.ReadAll(resp.Body)
		conn.Close()
		require.Equal(t, 400, resp.StatusCode, string(raw))
		var e map[string]string
		require.NoError(t, json.Unmarshal(raw, &e))
		require.Equal(t, "batch", e["field"])
		require.Contains(t, e["error"], "500 KB")
	}
}

// TestCORSForBrowserSDKs: analytics.js posts text/plain with the write key
// in the body to /v1/t; other browser SDKs preflight. Allowed origins get
// CORS headers; others are refused and nothing is stored.
func TestCORSForBrowserSDKs(t *testing.T) {
	srv, st := publicAPI(t, ingest.APIOptions{CORSOrigins: []string{"https://shop.example.com"}})
	send := func(method, path, origin, contentType, body string) *http.Response {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if method == "OPTIONS" {
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	resp := send("OPTIONS", "/v1/track", "https://shop.example.com", "", "")
	require.Equal(t, 204, resp.StatusCode)
	require.Equal(t, "https://shop.example.com", resp.Header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, resp.Header.Get("Access-Control-Allow-Methods"), "POST")
	require.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), "Authorization")
	require.Equal(t, 403, send("OPTIONS", "/v1/track", "https://evil.example", "", "").StatusCode)

	track := `{"type":"track","event":"viewed","userId":"web-1","messageId":"%s","writeKey":"wk-public"}`
	resp = send("POST", "/v1/t", "https://shop.example.com", "text/plain", fmt.Sprintf(track, "m1"))
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "https://shop.example.com", resp.Header.Get("Access-Control-Allow-Origin"))
	require.Equal(t, 403, send("POST", "/v1/t", "https://evil.example", "text/plain", fmt.Sprintf(track, "m2")).StatusCode)
	require.Equal(t, 401, send("POST", "/v1/t", "", "text/plain", strings.Replace(fmt.Sprintf(track, "m3"), "wk-public", "wrong", 1)).StatusCode)
	n, err := st.CountEvents(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(1), n, "only the allowed origin's event is stored")
}

// TestRateLimitPerWriteKey: over the budget a key gets 429 with
// Retry-After; another key is not affected; time refills the bucket.
func TestRateLimitPerWriteKey(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv, _ := publicAPI(t, ingest.APIOptions{WriteKeys: []string{"key-a", "key-b"}, RatePerSecond: 0.5, RateBurst: 2, Now: clock})
	post := func(key, id string) *http.Response {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/track", strings.NewReader(`{"userId":"u1","event":"e","messageId":"`+id+`"}`))
		req.SetBasicAuth(key, "")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	require.Equal(t, 200, post("key-a", "1").StatusCode)
	require.Equal(t, 200, post("key-a", "2").StatusCode)
	resp := post("key-a", "3")
	require.Equal(t, 429, resp.StatusCode)
	require.Equal(t, "2", resp.Header.Get("Retry-After"), "one request per 2 s")
	require.Equal(t, 200, post("key-b", "4").StatusCode, "budgets are per key")
	mu.Lock()
	now = now.Add(2 * time.Second)
	mu.Unlock()
	require.Equal(t, 200, post("key-a", "5").StatusCode)
}
