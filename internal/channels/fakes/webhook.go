package fakes

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Webhook is a receiver for the webhook channel: it checks the signature
// (HMAC-SHA256 of "timestamp.body", X-Huabu-Signature: v1=<hex>) and the
// timestamp, counts deliveries per Idempotency-Key (Delivered is keyed by
// the event's recipient.user_id), and answers 2xx, or the injected fault:
// RateLimit 429 with Retry-After, ServerError 500, HTTP5xx 502.
type Webhook struct {
	base
	Secret []byte
	// Status, when set, is answered to every valid delivery (e.g. 400 or 410).
	Status int
	// Refuse answers valid deliveries to these recipient user ids with the
	// status given (e.g. 410).
	Refuse map[string]int
	Now    func() time.Time

	mu     sync.Mutex
	byKey  map[string]int
	events []json.RawMessage
}

// NewWebhook starts a receiver that verifies with secret.
func NewWebhook(secret string) *Webhook {
	f := &Webhook{Secret: []byte(secret), Now: time.Now, byKey: map[string]int{}}
	f.init()
	f.srv = httptest.NewServer(http.HandlerFunc(f.handle))
	return f
}

func (f *Webhook) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.record(r, body)
	ts := r.Header.Get("X-Huabu-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || f.Now().Sub(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		http.Error(w, "stale or missing timestamp", http.StatusUnauthorized)
		return
	}
	mac := hmac.New(sha256.New, f.Secret)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := "v1=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(strings.TrimSpace(r.Header.Get("X-Huabu-Signature"))), []byte(want)) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var ev struct {
		ID        string `json:"id"`
		Recipient struct {
			UserID string `json:"user_id"`
		} `json:"recipient"`
	}
	if json.Unmarshal(body, &ev) != nil || ev.ID == "" || ev.ID != r.Header.Get("Idempotency-Key") {
		http.Error(w, "bad event", http.StatusBadRequest)
		return
	}
	switch f.Next() {
	case RateLimit:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "slow down", http.StatusTooManyRequests)
		return
	case ServerError:
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	case HTTP5xx:
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return
	case Timeout:
		f.hang(r)
		return
	case TimeoutAfterDelivery:
		f.deliver(ev.ID, ev.Recipient.UserID, body)
		f.hang(r)
		return
	}
	if f.Status != 0 {
		http.Error(w, "refused", f.Status)
		return
	}
	if st := f.Refuse[ev.Recipient.UserID]; st != 0 {
		http.Error(w, "refused", st)
		return
	}
	f.deliver(ev.ID, ev.Recipient.UserID, body)
	w.WriteHeader(http.StatusNoContent)
}

func (f *Webhook) deliver(id, user string, body []byte) {
	f.mu.Lock()
	f.byKey[id]++
	f.events = append(f.events, append(json.RawMessage(nil), body...))
	f.mu.Unlock()
	f.add(user)
}

// Events lists the bodies received and accepted.
func (f *Webhook) Events() []json.RawMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]json.RawMessage(nil), f.events...)
}

func init() {
	RegisterStandalone(Standalone{
		Name: "webhook", Title: "Webhook", Addr: "127.0.0.1:9005", Unit: "users",
		Doc:       "a receiver that checks Huabu's webhook signature",
		FailKinds: []string{"410", "400", "403", "404", "422"},
		FailDoc:   "user ids: an HTTP status, 410 by default",
		FailKind: func(k string) (string, bool) {
			n, err := strconv.Atoi(k)
			return k, err == nil && n >= 400 && n < 500
		},
		Start: func(o StandaloneOptions) (*Running, error) {
			f, err := NewWebhookAt(o.Addr, o.Secret)
			if err != nil {
				return nil, err
			}
			f.Refuse = map[string]int{}
			for r, k := range o.Fails {
				f.Refuse[r], _ = strconv.Atoi(k)
			}
			return &Running{URL: f.URL(), Close: f.Close, OnCall: f.OnCall, Faults: &f.Faults, Ledger: &f.Ledger, Summarize: webhookCallLine,
				Config: fmt.Sprintf(`webhook: {url: "%s/", secret: %s}`, f.URL(), o.Secret)}, nil
		},
	})
}

func webhookCallLine(call Call) (string, []string) {
	var ev struct {
		ID        string `json:"id"`
		CanvasID  string `json:"canvas_id"`
		StepID    string `json:"step_id"`
		Recipient struct {
			UserID string `json:"user_id"`
		} `json:"recipient"`
	}
	_ = json.Unmarshal(call.Body, &ev)
	head := fmt.Sprintf("webhook %s %s/%s user %s →", ev.ID, ev.CanvasID, ev.StepID, ev.Recipient.UserID)
	if s, ok := noAnswer(call); ok {
		return head + " " + s, []string{"no answer"}
	}
	msg := strings.TrimSpace(string(call.Response))
	return strings.TrimSpace(fmt.Sprintf("%s %d %s", head, call.Status, msg)), []string{strconv.Itoa(call.Status)}
}
