package channels

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/huabu/huabu/internal/canvases"
)

// Webhook headers. The signature is Stripe's scheme: HMAC-SHA256, keyed by
// the configured secret, of the timestamp header, a dot and the raw body,
// hex-encoded after "v1=". Receivers recompute it and reject old timestamps.
const (
	WebhookSignatureHeader = "X-Huabu-Signature"
	WebhookTimestampHeader = "X-Huabu-Timestamp"
	WebhookIDHeader        = "Idempotency-Key"
)

func init() {
	Register(Spec{
		Name: "webhook", Provider: "webhook",
		Doc: "A JSON POST per delivery to the configured url: recipient, message fields and canvas/run/step ids, signed in " +
			WebhookSignatureHeader + " (v1=hex HMAC-SHA256 of timestamp.body) with " + WebhookTimestampHeader + ", and a stable " +
			WebhookIDHeader + " per delivery. 2xx sent; 429 retry later (Retry-After); 5xx retry now; other 4xx permanent.",
		MaxRecipients: 100, Groupable: false,
		Config: []ConfigField{
			{Name: "url", Doc: "where to POST", Required: true},
			{Name: "secret", Doc: "the HMAC key receivers verify the signature with", Required: true, Secret: true},
			{Name: "timeout", Doc: "how long one POST may take", Default: "10s"},
			{Name: "concurrency", Doc: "POSTs in flight per send", Default: "8"},
		},
	}, newWebhook)
}

type webhook struct {
	spec        Spec
	url         string
	secret      []byte
	timeout     time.Duration
	concurrency int
	http        *http.Client
	log         *slog.Logger
	now         func() time.Time
}

func newWebhook(cfg map[string]any, deps Deps) (Channel, error) {
	spec, _, _ := Lookup("webhook", "webhook")
	s := NewSettings(spec, cfg, deps.Logger)
	c := &webhook{spec: spec, url: s.BaseURL("url"), secret: []byte(s.Str("secret")), timeout: s.Duration("timeout"),
		concurrency: s.Integer("concurrency"), http: deps.HTTP, log: deps.Logger, now: deps.Now}
	s.Check(c.timeout > 0, "timeout: must be more than 0")
	s.Check(c.concurrency > 0, "concurrency: must be at least 1")
	if err := s.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *webhook) Spec() Spec { return c.spec }

// WebhookEvent is the JSON body of a webhook delivery.
type WebhookEvent struct {
	ID        string            `json:"id"` // also the Idempotency-Key header: stable across retries
	CanvasID  string            `json:"canvas_id"`
	RunID     string            `json:"run_id"`
	StepID    string            `json:"step_id"`
	BatchKey  string            `json:"batch_key,omitempty"`
	Recipient WebhookRecipient  `json:"recipient"`
	Message   *canvases.Message `json:"message"`
	SentAt    time.Time         `json:"sent_at"`
}

type WebhookRecipient struct {
	UserID  string            `json:"user_id"`
	Address string            `json:"address,omitempty"`
	Sender  string            `json:"sender,omitempty"`
	Attrs   map[string]string `json:"attrs,omitempty"`
}

// WebhookSignature is the X-Huabu-Signature value for a timestamp and body.
func WebhookSignature(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte("."))
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifyWebhook checks a received delivery's signature and that its
// timestamp is within tolerance of now (replays are refused).
func VerifyWebhook(secret []byte, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) bool {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return false
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return false
	}
	want := WebhookSignature(secret, timestamp, body)
	for _, s := range strings.Split(signature, ",") { // room for several during key rotation
		if hmac.Equal([]byte(strings.TrimSpace(s)), []byte(want)) {
			return true
		}
	}
	return false
}

func (c *webhook) Send(ctx context.Context, b Batch) ([]Outcome, error) {
	res := NewResults(len(b.Deliveries))
	Parallel(ctx, len(b.Deliveries), c.concurrency, func(i int) {
		d := b.Deliveries[i]
		ev := WebhookEvent{
			ID: webhookID(b, d), CanvasID: b.CanvasID, RunID: b.RunID, StepID: b.StepID, BatchKey: b.Key,
			Recipient: WebhookRecipient{UserID: d.Recipient.UserID, Address: d.Recipient.Address, Sender: d.Recipient.Sender, Attrs: d.Recipient.Attrs},
			Message:   d.Message, SentAt: c.now().UTC(),
		}
		body, err := json.Marshal(ev)
		if err != nil {
			res.Fail(i, &Error{Class: Permanent, Reason: ReasonInvalidContent, Message: err.Error()})
			return
		}
		e := c.post(ctx, ev.ID, body)
		if e == nil {
			res.Sent(i, ev.ID)
			return
		}
		c.log.Warn("webhook delivery failed", "batch", b.Key, "user", d.Recipient.UserID, "class", e.Class, "reason", e.Reason, "status", e.Code)
		res.CallFailed(i, e)
	})
	return res.Finish()
}

func (c *webhook) post(ctx context.Context, id string, body []byte) *Error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return &Error{Class: Permanent, Reason: ReasonMisconfigured, Message: err.Error()}
	}
	ts := strconv.FormatInt(c.now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "huabu-webhook/1")
	req.Header.Set(WebhookTimestampHeader, ts)
	req.Header.Set(WebhookSignatureHeader, WebhookSignature(c.secret, ts, body))
	req.Header.Set(WebhookIDHeader, id)
	reply, err := DoHTTP(c.http, req)
	if err != nil {
		return err.(*Error)
	}
	if reply.Status >= 200 && reply.Status < 300 {
		return nil
	}
	e := StatusError(reply.Status, reply.Header, c.now(), reply.Body)
	if e.Reason == ReasonMisconfigured && reply.Status == http.StatusForbidden {
		e.Reason = ReasonRejected // a receiver's 403 is its verdict, not our credentials
	}
	return e
}

// webhookID identifies a delivery across retries (run, step, recipient).
func webhookID(b Batch, d Delivery) string {
	id := b.CanvasID + "\x00" + b.RunID + "\x00" + b.StepID + "\x00" + d.Recipient.UserID + "\x00" + d.Recipient.Address
	if b.Visit > 0 { // a loop's later visit is a message of its own
		id += "\x00" + strconv.Itoa(b.Visit)
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}
