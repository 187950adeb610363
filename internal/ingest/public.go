package ingest

import (
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// What browsers and busy clients need from the public endpoints: CORS for
// pages that send events (analytics.js), and per-key rate limits.

// corsAllowed sets the CORS headers of a request from an allowed origin
// and reports false for a browser request from any other origin when
// origins are configured. Requests without Origin (servers, SDKs) pass.
func (a *API) corsAllowed(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if len(a.opts.CORSOrigins) == 0 {
		return true // no CORS headers: the page cannot read the answer
	}
	if !slices.Contains(a.opts.CORSOrigins, "*") && !slices.Contains(a.opts.CORSOrigins, origin) {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	return true
}

// preflight answers OPTIONS for the ingestion paths: 204 with what a page
// from an allowed origin may send, 403 otherwise.
func (a *API) preflight(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Origin") == "" || len(a.opts.CORSOrigins) == 0 || !a.corsAllowed(w, r) {
		a.fail(w, r, http.StatusForbidden, "origin", &FieldError{Field: "Origin", Message: "this origin is not in http.cors_origins"})
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Content-Encoding")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// keyLimits is a token bucket per write key (or client address).
type keyLimits struct {
	mu      sync.Mutex
	perSec  rate.Limit
	burst   int
	buckets map[string]*rate.Limiter
}

func newKeyLimits(perSecond float64, burst int) *keyLimits {
	if burst <= 0 {
		burst = max(1, int(perSecond))
	}
	return &keyLimits{perSec: rate.Limit(perSecond), burst: burst, buckets: map[string]*rate.Limiter{}}
}

// maxBuckets bounds the keys remembered (client addresses when the API is open).
const maxBuckets = 100000

// take spends one request of key's budget, or says how long to wait.
func (k *keyLimits) take(key string, now time.Time) time.Duration {
	k.mu.Lock()
	l, ok := k.buckets[key]
	if !ok {
		if len(k.buckets) >= maxBuckets {
			k.buckets = map[string]*rate.Limiter{} // many addresses: start over rather than grow without bound
		}
		l = rate.NewLimiter(k.perSec, k.burst)
		k.buckets[key] = l
	}
	k.mu.Unlock()
	r := l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now) // not taken: the request is refused
		return d
	}
	return 0
}

func clientHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return strings.TrimPrefix(host, "::ffff:")
}
