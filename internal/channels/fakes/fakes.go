// Package fakes runs local stand-ins for Huabu's message providers — WeCom,
// Aliyun and Tencent Cloud SMS, JPush, APNs, an SMTP server and a webhook
// receiver — that speak the providers' real wire formats: paths, auth
// (WeCom access tokens, Aliyun ACS3 and Tencent TC3 signatures, JPush Basic
// auth, APNs JWT over HTTP/2), request and answer shapes and error codes.
// Channel tests, engine tests and `huabu dev` point the production channels
// at them.
//
// Every fake counts messages delivered per recipient (Delivered), so tests
// can assert exactly-once, and injects faults — rate limits, server errors,
// timeouts that hang past the client's deadline (before or after delivering),
// WeCom token expiry — from a script or at random with a fixed seed.
package fakes

import (
	"math/rand"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"time"
)

// Fault is one injected failure.
type Fault int

const (
	None Fault = iota
	// RateLimit answers with the provider's throttling error.
	RateLimit
	// ServerError answers with the provider's own "system busy" error.
	ServerError
	// HTTP5xx answers 502 Bad Gateway with no provider body.
	HTTP5xx
	// Timeout hangs without acting until the client gives up.
	Timeout
	// TimeoutAfterDelivery delivers, then hangs: the ambiguous case.
	TimeoutAfterDelivery
	// TokenExpired expires the WeCom access token (errcode 42001).
	TokenExpired
)

func (f Fault) String() string {
	return [...]string{"none", "rate_limit", "server_error", "http_5xx", "timeout", "timeout_after_delivery", "token_expired"}[f]
}

// Faults decides the fault for each provider call: scripted faults first,
// then, with probability Rate, one of Kinds chosen by a seeded generator.
type Faults struct {
	mu     sync.Mutex
	script []Fault
	rate   float64
	kinds  []Fault
	rnd    *rand.Rand
	counts map[Fault]int
}

// Script queues faults for the next calls (None lets a call through).
func (f *Faults) Script(fs ...Fault) {
	f.mu.Lock()
	f.script = append(f.script, fs...)
	f.mu.Unlock()
}

// Random injects one of kinds into a share rate of calls, deterministically
// for a seed.
func (f *Faults) Random(seed int64, rate float64, kinds ...Fault) {
	f.mu.Lock()
	f.rnd, f.rate, f.kinds = rand.New(rand.NewSource(seed)), rate, kinds
	f.mu.Unlock()
}

// Next returns the fault for the next call.
func (f *Faults) Next() Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.counts == nil {
		f.counts = map[Fault]int{}
	}
	fault := None
	switch {
	case len(f.script) > 0:
		fault, f.script = f.script[0], f.script[1:]
	case f.rnd != nil && len(f.kinds) > 0 && f.rnd.Float64() < f.rate:
		fault = f.kinds[f.rnd.Intn(len(f.kinds))]
	}
	f.counts[fault]++
	return fault
}

// Injected counts the faults handed out so far.
func (f *Faults) Injected() map[Fault]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[Fault]int{}
	for k, v := range f.counts {
		if k != None {
			out[k] = v
		}
	}
	return out
}

// Ledger counts deliveries per recipient.
type Ledger struct {
	mu     sync.Mutex
	counts map[string]int
	total  int
}

func (l *Ledger) add(recipient string) {
	l.mu.Lock()
	if l.counts == nil {
		l.counts = map[string]int{}
	}
	l.counts[recipient]++
	l.total++
	l.mu.Unlock()
}

// Delivered returns a copy of the count per recipient.
func (l *Ledger) Delivered() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int, len(l.counts))
	for k, v := range l.counts {
		out[k] = v
	}
	return out
}

// Count is how often recipient got a message.
func (l *Ledger) Count(recipient string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[recipient]
}

// Total is the number of messages delivered.
func (l *Ledger) Total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// Duplicates lists recipients who got more than one message, sorted.
func (l *Ledger) Duplicates() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for k, v := range l.counts {
		if v > 1 {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Request is one HTTP request a fake received, for exact-request tests.
type Request struct {
	Method string
	Path   string
	Query  map[string][]string
	Header http.Header
	Body   []byte
	Proto  string
}

// base is what the HTTP fakes share: the server, faults, ledger and the
// request log.
type base struct {
	srv *httptest.Server
	Faults
	Ledger
	// Hang bounds how long a Timeout fault holds a request when the client
	// does not give up first (default 30s).
	Hang time.Duration
	// KeepRequests records requests for Requests (on by default; turn it
	// off for benchmarks).
	KeepRequests bool

	reqMu    sync.Mutex
	requests []Request
	closing  chan struct{}
	once     sync.Once
}

func (b *base) init() {
	b.closing = make(chan struct{})
	b.KeepRequests = true
	b.Hang = 30 * time.Second
}

func (b *base) record(r *http.Request, body []byte) {
	if !b.KeepRequests {
		return
	}
	b.reqMu.Lock()
	b.requests = append(b.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body, Proto: r.Proto})
	b.reqMu.Unlock()
}

// Requests returns the requests received so far.
func (b *base) Requests() []Request {
	b.reqMu.Lock()
	defer b.reqMu.Unlock()
	return append([]Request(nil), b.requests...)
}

// hang holds a request until the client gives up, the fake closes or Hang passes.
func (b *base) hang(r *http.Request) {
	t := time.NewTimer(b.Hang)
	defer t.Stop()
	select {
	case <-r.Context().Done():
	case <-b.closing:
	case <-t.C:
	}
}

// URL is the fake's root URL.
func (b *base) URL() string { return b.srv.URL }

// Close stops the fake, releasing hung requests first.
func (b *base) Close() {
	b.once.Do(func() { close(b.closing) })
	b.srv.Close()
}
