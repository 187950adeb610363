package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/huabu/huabu/internal/store"
)

// EventStore is where the API stores messages.
type EventStore interface {
	Ingest(ctx context.Context, msgs []store.Message, opts store.IngestOptions) (store.IngestResult, error)
}

// TraitNotifier is told after users were marked due for trait
// recomputation (traits.Engine implements it).
type TraitNotifier interface {
	Notify()
}

// APIOptions configure the ingestion API.
type APIOptions struct {
	Store     EventStore
	Validator *Validator
	// WriteKeys are accepted keys; when empty every request is accepted
	// (a warning is logged once, here).
	WriteKeys []string
	// Traits, when set, is notified after each stored request, and the
	// touched users are marked due in the storing transaction.
	Traits TraitNotifier
	// Sink receives the stored events of each request, after the commit.
	Sink   Sink
	Logger *slog.Logger
	// Metrics, when set, gets the ingestion counters.
	Metrics prometheus.Registerer
	// CORSOrigins are the web origins whose pages may call the API
	// (http.cors_origins; "*" for any). Browser requests from other origins
	// are refused.
	CORSOrigins []string
	// RatePerSecond and RateBurst limit requests per write key (per client
	// address when no keys are configured); 0 is no limit. Over it, 429
	// with Retry-After.
	RatePerSecond float64
	RateBurst     int
	Now           func() time.Time
}

// API serves the Segment-compatible ingestion endpoints:
// POST /v1/identify, /v1/track, /v1/page, /v1/screen, /v1/alias, /v1/group
// and /v1/batch. A request is all or nothing: it is validated completely
// before anything is stored, stored in one transaction, and answered 200
// only after the commit.
type API struct {
	opts     APIOptions
	log      *slog.Logger
	messages *prometheus.CounterVec
	rejected *prometheus.CounterVec
	limits   *keyLimits
}

// NewAPI builds the ingestion API.
func NewAPI(opts APIOptions) *API {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &API{opts: opts, log: opts.Logger}
	if len(opts.WriteKeys) == 0 {
		a.log.Warn("http.write_keys is empty: the ingestion API accepts requests from anyone who can reach it")
	}
	a.messages = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "huabu_ingest_messages_total", Help: "Messages accepted by the ingestion API, by type and outcome (stored, duplicate; accepted when the accept log defers storing; received for batches)."}, []string{"type", "outcome"})
	a.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "huabu_ingest_rejected_requests_total", Help: "Ingestion requests refused, by reason."}, []string{"reason"})
	if opts.Metrics != nil {
		opts.Metrics.MustRegister(a.messages, a.rejected)
	}
	if opts.RatePerSecond > 0 {
		a.limits = newKeyLimits(opts.RatePerSecond, opts.RateBurst)
	}
	return a
}

// Router is where routes are registered (server.Handler, http.ServeMux).
type Router interface {
	Handle(pattern string, handler http.Handler)
}

// Register adds the ingestion routes: Segment's names, the one-letter
// paths analytics.js (analytics-next) posts to (/v1/t, /v1/i, ...), and
// their CORS preflights.
func (a *API) Register(r Router) {
	for _, kind := range []string{"identify", "track", "page", "screen", "alias", "group", "batch"} {
		for _, path := range []string{"/v1/" + kind, "/v1/" + kind[:1]} {
			r.Handle("POST "+path, a.Handler(kind))
			r.Handle("OPTIONS "+path, http.HandlerFunc(a.preflight))
		}
	}
}

// Handler serves one endpoint: a message type, or "batch".
func (a *API) Handler(kind string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { a.serve(w, r, kind) })
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, code int, reason string, fe *FieldError) {
	// Read what the client is still sending before answering: a server that
	// answers and closes mid-upload leaves the client with a broken pipe
	// instead of this answer.
	drain(r.Body)
	a.rejected.WithLabelValues(reason).Inc()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(fe)
}

// maxDrain bounds what is read of a refused request's body so it can be
// answered; past it the connection is closed.
const maxDrain = 16 << 20

func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxDrain))
}

func (a *API) serve(w http.ResponseWriter, r *http.Request, kind string) {
	if !a.corsAllowed(w, r) {
		a.fail(w, r, http.StatusForbidden, "origin", &FieldError{Field: "Origin", Message: "this origin is not in http.cors_origins"})
		return
	}
	limit := MaxMessageBytes
	if kind == "batch" {
		limit = MaxBatchBytes
	}
	body, fe := readBody(r, limit)
	if fe != nil {
		if kind == "batch" && fe.Field == "" {
			fe.Field = "batch"
		}
		a.fail(w, r, http.StatusBadRequest, "too_large", fe)
		return
	}
	key, ok := a.authorized(r, body)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="huabu"`)
		a.fail(w, r, http.StatusUnauthorized, "auth", &FieldError{Field: "Authorization", Message: "a valid write key is required: HTTP Basic with the write key as user name, Authorization: Bearer KEY, or writeKey in the body"})
		return
	}
	if a.limits != nil {
		if key == "" {
			key = "addr:" + clientHost(r)
		}
		if wait := a.limits.take(key, a.opts.Now()); wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
			a.fail(w, r, http.StatusTooManyRequests, "rate_limited", &FieldError{Message: "too many requests for this write key; nothing was stored, retry after Retry-After seconds"})
			return
		}
	}
	now := a.opts.Now()
	parsed, fe := a.parse(kind, body, now)
	if fe != nil {
		a.fail(w, r, http.StatusBadRequest, "invalid", fe)
		return
	}
	msgs := make([]store.Message, len(parsed))
	for i := range parsed {
		msgs[i] = parsed[i].Message
	}
	res, err := a.opts.Store.Ingest(r.Context(), msgs, store.IngestOptions{Realtime: true, MarkDue: a.opts.Traits != nil, ReceivedAt: now})
	if err != nil {
		if r.Context().Err() != nil {
			// The client went away before the commit: nothing was stored.
			return
		}
		if errors.Is(err, ErrOverloaded) {
			w.Header().Set("Retry-After", "2")
			a.fail(w, r, http.StatusServiceUnavailable, "overloaded", &FieldError{Message: "the ingestion backlog is full; nothing was stored, retry later"})
			return
		}
		a.log.Error("ingest: storing messages failed", "messages", len(msgs), "err", err)
		a.fail(w, r, http.StatusInternalServerError, "internal", &FieldError{Message: "internal error; nothing was stored, retry later"})
		return
	}
	if a.opts.Traits != nil && len(res.Touched) > 0 {
		a.opts.Traits.Notify()
	}
	if a.opts.Sink != nil && len(res.Events) > 0 {
		events := make([]Event, len(res.Events))
		for i, se := range res.Events {
			p := parsed[se.Index]
			events[i] = Event{ID: se.ID, UID: se.UID, UserID: se.UserID, Name: p.Message.Name, Properties: p.Decoded(),
				Timestamp: p.Message.Timestamp, ReceivedAt: se.ReceivedAt, FromRealtime: true}
		}
		// The events are committed; the request's cancellation must not cut
		// the hand-over short.
		a.opts.Sink.Events(context.WithoutCancel(r.Context()), events)
	}
	a.count(parsed, res)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write([]byte(`{"success":true}` + "\n"))
}

func (a *API) count(parsed []Parsed, res store.IngestResult) {
	if len(parsed) == 1 {
		outcome := "stored"
		if res.Deferred {
			outcome = "accepted"
		} else if res.Duplicates > 0 {
			outcome = "duplicate"
		}
		a.messages.WithLabelValues(parsed[0].Message.Type, outcome).Inc()
		return
	}
	byType := map[string]int{}
	for _, p := range parsed {
		byType[p.Message.Type]++
	}
	for t, n := range byType {
		a.messages.WithLabelValues(t, "received").Add(float64(n))
	}
	if !res.Deferred {
		a.messages.WithLabelValues("all", "duplicate").Add(float64(res.Duplicates))
	}
}

// authorized checks the write key: HTTP Basic with the key as user name
// (Segment's convention; the password is ignored), a Bearer token, or —
// what analytics.js sends, with no header, to avoid a CORS preflight —
// writeKey in the JSON body. It returns the key.
func (a *API) authorized(r *http.Request, body []byte) (string, bool) {
	key := ""
	h := r.Header.Get("Authorization")
	switch {
	case strings.HasPrefix(h, "Basic "):
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[len("Basic "):]))
		if err != nil {
			return "", len(a.opts.WriteKeys) == 0
		}
		key, _, _ = strings.Cut(string(raw), ":")
	case strings.HasPrefix(h, "Bearer "):
		key = strings.TrimSpace(h[len("Bearer "):])
	case h == "":
		var inBody struct {
			WriteKey string `json:"writeKey"`
		}
		_ = json.Unmarshal(body, &inBody)
		key = inBody.WriteKey
	}
	if len(a.opts.WriteKeys) == 0 {
		return key, true
	}
	if key == "" {
		return "", false
	}
	ok := 0
	for _, k := range a.opts.WriteKeys {
		ok |= subtle.ConstantTimeCompare([]byte(k), []byte(key))
	}
	return key, ok == 1
}

// readBody reads at most limit bytes of the (possibly gzipped) body.
func readBody(r *http.Request, limit int) ([]byte, *FieldError) {
	var src io.Reader = r.Body
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, &FieldError{Message: "Content-Encoding is gzip but the body is not gzip data"}
		}
		defer zr.Close()
		src = zr
	} else if r.ContentLength > int64(limit) {
		return nil, &FieldError{Message: tooLarge(r.ContentLength, limit)}
	}
	body, err := io.ReadAll(io.LimitReader(src, int64(limit)+1))
	if err != nil {
		return nil, &FieldError{Message: "reading the body: " + err.Error()}
	}
	if len(body) > limit {
		return nil, &FieldError{Message: tooLarge(-1, limit)}
	}
	return body, nil
}

func tooLarge(n int64, limit int) string {
	unit := "32 KB"
	if limit == MaxBatchBytes {
		unit = "500 KB"
	}
	if n < 0 {
		return fmt.Sprintf("request body is larger than %d bytes (%s); send smaller batches", limit, unit)
	}
	return fmt.Sprintf("request body is %d bytes; the limit is %d (%s)", n, limit, unit)
}

// batchBody is the /v1/batch envelope.
type batchBody struct {
	Batch  []json.RawMessage `json:"batch"`
	SentAt json.RawMessage   `json:"sentAt"`
	// context, messageId, writeKey: accepted and ignored
}

// parse validates a request body completely.
func (a *API) parse(kind string, body []byte, now time.Time) ([]Parsed, *FieldError) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, &FieldError{Message: "the body is empty; send a JSON object"}
	}
	if kind != "batch" {
		if firstByte(body) != '{' {
			return nil, &FieldError{Message: "the body must be a JSON object"}
		}
		if err := checkJSON(body); err != nil {
			return nil, err
		}
		p, fe := a.opts.Validator.parse(body, parseOptions{kind: kind, now: now, validJSON: true})
		if fe != nil {
			return nil, fe
		}
		return []Parsed{p}, nil
	}
	if firstByte(body) != '{' {
		return nil, &FieldError{Message: `the body must be a JSON object: {"batch": [...]}`}
	}
	if err := checkJSON(body); err != nil {
		return nil, err
	}
	b, ok := splitBatchJSON(body)
	if !ok {
		return nil, &FieldError{Field: "batch", Message: "batch must be a list of messages"}
	}
	if b.Batch == nil {
		return nil, &FieldError{Field: "batch", Message: "batch is required: a list of messages"}
	}
	o := parseOptions{now: now, validJSON: true}
	if s, ok := str(b.SentAt); ok && s != "" {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			o.sentAt = t
		}
	}
	out := make([]Parsed, len(b.Batch))
	for i, raw := range b.Batch {
		o.prefix = "batch[" + strconv.Itoa(i) + "]."
		p, fe := a.opts.Validator.parse(raw, o)
		if fe != nil {
			return nil, fe
		}
		out[i] = p
	}
	return out, nil
}

// checkJSON reports malformed JSON with its byte offset, before any field
// is looked at.
func checkJSON(body []byte) *FieldError {
	if json.Valid(body) {
		return nil
	}
	var v any
	err := json.Unmarshal(body, &v)
	if err == nil {
		return nil
	}
	return &FieldError{Message: "invalid JSON: " + jsonMessage(err)}
}
