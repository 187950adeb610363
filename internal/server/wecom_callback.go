package server

import (
	"context"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/silenceper/wechat/v2/util"

	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/store"
)

// WeComCallbackConfig is channels.wecom.callback with the corp id.
type WeComCallbackConfig struct {
	Token  string
	AESKey string // the EncodingAESKey, 43 characters
	CorpID string // a decrypted message must name this corp (its receiveid)
	// MaxAge bounds how far a callback's timestamp may be from now
	// (default 5 minutes); nonces are remembered for twice as long.
	MaxAge time.Duration
}

// WeComCallbackStore is what the callback keeps current: contacts, welcome
// codes, customers' owners, acknowledgements, and the nonces it has seen.
type WeComCallbackStore interface {
	RememberNonce(ctx context.Context, nonce string, at, forgetBefore time.Time) (bool, error)
	ForgetNonce(ctx context.Context, nonce string) error
	ContactAdded(ctx context.Context, staff, external, addState, welcomeCode string, expires time.Time) error
	ContactRemoved(ctx context.Context, staff, external, state string) error
	LinkCustomer(ctx context.Context, l store.CustomerLink) (string, bool, error)
	CustomerByExternal(ctx context.Context, external string) (string, error)
	AckStaffTask(ctx context.Context, ref, staff string, at time.Time) (bool, error)
	Suppress(ctx context.Context, entries []store.Suppression) (int, error)
	LiftSuppression(ctx context.Context, subject, source string) (int, error)
}

// CallbackEvent is a track event a callback produces, e.g. wecom.contact_added.
type CallbackEvent struct {
	MessageID  string // stable per callback, so a redelivery is one event
	UserID     string
	Name       string
	Properties map[string]any
	Timestamp  time.Time
}

// EventRecorder stores events durably and hands them to the engine, the same
// path app events take, so canvases trigger on them.
type EventRecorder interface {
	RecordEvents(ctx context.Context, events []CallbackEvent) error
}

// WelcomeWindow is how long after the callback a welcome code is used:
// WeCom allows 20 s from its push; two are kept for the way here.
const WelcomeWindow = 18 * time.Second

// WeComCallback serves GET|POST /wecom/callback: URL verification,
// msg_signature (which silenceper/wechat does not check), AES decryption
// with the corp id check, and replay protection, before anything is
// processed.
type WeComCallback struct {
	cfg    WeComCallbackConfig
	store  WeComCallbackStore
	events EventRecorder
	log    *slog.Logger
	Now    func() time.Time
}

// NewWeComCallback checks the config and builds the handler.
func NewWeComCallback(cfg WeComCallbackConfig, st WeComCallbackStore, events EventRecorder, log *slog.Logger) (*WeComCallback, error) {
	switch {
	case cfg.Token == "":
		return nil, errors.New("channels.wecom.callback.token is required")
	case len(cfg.AESKey) != 43:
		return nil, errors.New("channels.wecom.callback.aes_key must be the 43-character EncodingAESKey")
	case cfg.CorpID == "":
		return nil, errors.New("channels.wecom.corp_id is required for the callback")
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 5 * time.Minute
	}
	if log == nil {
		log = slog.Default()
	}
	return &WeComCallback{cfg: cfg, store: st, events: events, log: log, Now: time.Now}, nil
}

// envelope is the POST body: the encrypted message.
type envelope struct {
	ToUserName string `xml:"ToUserName"`
	Encrypt    string `xml:"Encrypt"`
	AgentID    string `xml:"AgentID"`
}

// callbackMessage is a decrypted event (the fields Huabu reads).
type callbackMessage struct {
	ToUserName     string `xml:"ToUserName"`
	FromUserName   string `xml:"FromUserName"`
	CreateTime     int64  `xml:"CreateTime"`
	MsgType        string `xml:"MsgType"`
	Event          string `xml:"Event"`
	ChangeType     string `xml:"ChangeType"`
	UserID         string `xml:"UserID"`
	ExternalUserID string `xml:"ExternalUserID"`
	State          string `xml:"State"`
	WelcomeCode    string `xml:"WelcomeCode"`
	EventKey       string `xml:"EventKey"`
	TaskID         string `xml:"TaskId"`
}

func (c *WeComCallback) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sig, ts, nonce := q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce")
	for _, p := range []struct{ name, v string }{{"msg_signature", sig}, {"timestamp", ts}, {"nonce", nonce}} {
		if p.v == "" {
			writeError(w, http.StatusBadRequest, p.name, p.name+" is required")
			return
		}
	}
	at, ok := c.fresh(ts)
	if !ok {
		writeError(w, http.StatusForbidden, "timestamp", "timestamp is outside the accepted window")
		return
	}
	var encrypted string
	switch r.Method {
	case http.MethodGet:
		encrypted = q.Get("echostr")
		if encrypted == "" {
			writeError(w, http.StatusBadRequest, "echostr", "echostr is required")
			return
		}
	case http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			writeError(w, http.StatusBadRequest, "", "unreadable body")
			return
		}
		var env envelope
		if err := xml.Unmarshal(body, &env); err != nil || env.Encrypt == "" {
			writeError(w, http.StatusBadRequest, "Encrypt", "the body is not a WeCom callback envelope")
			return
		}
		encrypted = env.Encrypt
	default:
		writeError(w, http.StatusMethodNotAllowed, "", "use GET or POST")
		return
	}
	// The signature covers the ciphertext, so it is checked before anything
	// is decrypted or stored.
	want := util.Signature(c.cfg.Token, ts, nonce, encrypted)
	if subtle.ConstantTimeCompare([]byte(want), []byte(sig)) != 1 {
		c.log.Warn("wecom callback: bad signature", "remote", r.RemoteAddr)
		writeError(w, http.StatusForbidden, "msg_signature", "signature mismatch")
		return
	}
	_, plain, err := util.DecryptMsg(c.cfg.CorpID, encrypted, c.cfg.AESKey)
	if err != nil {
		// A valid signature with a body we cannot open: a wrong aes_key, or
		// a message for another corp.
		c.log.Warn("wecom callback: cannot decrypt", "err", err)
		writeError(w, http.StatusForbidden, "Encrypt", "cannot decrypt the message for this corp")
		return
	}
	if r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(plain)
		return
	}
	ctx := r.Context()
	fresh, err := c.store.RememberNonce(ctx, nonce, at, c.Now().Add(-2*c.cfg.MaxAge))
	if err != nil {
		c.log.Error("wecom callback: nonce", "err", err)
		writeError(w, http.StatusInternalServerError, "", "internal error")
		return
	}
	if !fresh {
		writeError(w, http.StatusConflict, "nonce", "this callback was received before")
		return
	}
	var msg callbackMessage
	if err := xml.Unmarshal(plain, &msg); err != nil {
		writeError(w, http.StatusBadRequest, "Encrypt", "the decrypted message is not XML")
		return
	}
	if err := c.handle(ctx, msg, plain); err != nil {
		// Let WeCom's retry (same nonce) through.
		_ = c.store.ForgetNonce(context.WithoutCancel(ctx), nonce)
		c.log.Error("wecom callback: processing failed", "event", msg.Event, "change", msg.ChangeType, "err", err)
		writeError(w, http.StatusInternalServerError, "", "internal error")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("success"))
}

// fresh parses the timestamp and checks it is within MaxAge of now.
func (c *WeComCallback) fresh(ts string) (time.Time, bool) {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	at := time.Unix(sec, 0)
	d := c.Now().Sub(at)
	return at, d <= c.cfg.MaxAge && d >= -c.cfg.MaxAge
}

// Contact change types of change_external_contact.
const (
	changeAdd          = "add_external_contact"
	changeDelExternal  = "del_external_contact" // the staff member removed the customer
	changeDelFollow    = "del_follow_user"      // the customer removed the staff member
	eventContactAdded  = "wecom.contact_added"
	eventContactRemove = "wecom.contact_removed"
)

func (c *WeComCallback) handle(ctx context.Context, m callbackMessage, raw []byte) error {
	at := time.Unix(m.CreateTime, 0)
	if m.CreateTime == 0 {
		at = c.Now()
	}
	id := messageID(raw)
	switch {
	case m.Event == "change_external_contact" && m.ChangeType == changeAdd:
		if m.UserID == "" || m.ExternalUserID == "" {
			return nil // nothing to link; acknowledged so WeCom does not retry
		}
		if err := c.store.ContactAdded(ctx, m.UserID, m.ExternalUserID, m.State, m.WelcomeCode, c.Now().Add(WelcomeWindow)); err != nil {
			return err
		}
		// Adding the staff member again is a fresh opt-in to WeCom messages.
		if _, err := c.store.LiftSuppression(ctx, store.AddressSubject(m.ExternalUserID), store.SuppressWeComDelFollow); err != nil {
			return err
		}
		userID, _, err := c.store.LinkCustomer(ctx, store.CustomerLink{Staff: m.UserID, ExternalUserID: m.ExternalUserID, State: m.State})
		if err != nil {
			return err
		}
		return c.record(ctx, CallbackEvent{MessageID: id, UserID: userID, Name: eventContactAdded, Timestamp: at, Properties: map[string]any{
			"staff": m.UserID, "customer": m.ExternalUserID, "state": m.State, "welcome_code": m.WelcomeCode,
		}})
	case m.Event == "change_external_contact" && (m.ChangeType == changeDelExternal || m.ChangeType == changeDelFollow):
		state, by := store.ContactRemovedByStaff, "staff"
		if m.ChangeType == changeDelFollow {
			state, by = store.ContactRemovedByCustomer, "customer"
		}
		if err := c.store.ContactRemoved(ctx, m.UserID, m.ExternalUserID, state); err != nil {
			return err
		}
		if m.ChangeType == changeDelFollow && m.ExternalUserID != "" {
			// The customer deleted the staff member: no more WeCom marketing
			// to them until they add someone again.
			if _, err := c.store.Suppress(ctx, []store.Suppression{{Subject: store.AddressSubject(m.ExternalUserID), Channel: "wecom.customer",
				Source: store.SuppressWeComDelFollow, Reason: "deleted staff member " + m.UserID, Display: store.MaskAddress(m.ExternalUserID)}}); err != nil {
				return err
			}
		}
		userID, err := c.store.CustomerByExternal(ctx, m.ExternalUserID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return c.record(ctx, CallbackEvent{MessageID: id, UserID: userID, Name: eventContactRemove, Timestamp: at, Properties: map[string]any{
			"staff": m.UserID, "customer": m.ExternalUserID, "by": by,
		}})
	case m.Event == "template_card_event" && m.TaskID != "":
		ok, err := c.store.AckStaffTask(ctx, m.TaskID, m.FromUserName, at)
		if err != nil {
			return err
		}
		if !ok {
			c.log.Info("wecom callback: card click for no staff task of this member", "task_id", m.TaskID)
		}
	}
	return nil
}

func (c *WeComCallback) record(ctx context.Context, ev CallbackEvent) error {
	if c.events == nil {
		return nil
	}
	return c.events.RecordEvents(ctx, []CallbackEvent{ev})
}

// messageID is stable for a callback's content, so WeCom's redelivery of
// the same event dedupes in the events table.
func messageID(plain []byte) string {
	sum := sha1.Sum(plain)
	return "wecom:" + hex.EncodeToString(sum[:12])
}

// EventIngester is the store's ingestion (store.Ingest).
type EventIngester interface {
	Ingest(ctx context.Context, msgs []store.Message, opts store.IngestOptions) (store.IngestResult, error)
}

// IngestRecorder records callback events through the ingestion store, as
// track calls, and hands the stored ones to the engine's Sink.
type IngestRecorder struct {
	Store EventIngester
	Sink  ingest.Sink // may be nil: stored, not routed
}

// RecordEvents implements EventRecorder.
func (r IngestRecorder) RecordEvents(ctx context.Context, events []CallbackEvent) error {
	msgs := make([]store.Message, len(events))
	for i, e := range events {
		props, err := json.Marshal(e.Properties)
		if err != nil {
			return err
		}
		msgs[i] = store.Message{Type: "track", MessageID: e.MessageID, UserID: e.UserID, Name: e.Name, Properties: props, Timestamp: e.Timestamp}
	}
	res, err := r.Store.Ingest(ctx, msgs, store.IngestOptions{Realtime: true, MarkDue: true})
	if err != nil {
		return fmt.Errorf("record events: %w", err)
	}
	if r.Sink == nil || len(res.Events) == 0 {
		return nil
	}
	out := make([]ingest.Event, 0, len(res.Events))
	for _, ie := range res.Events {
		e := events[ie.Index]
		out = append(out, ingest.Event{ID: ie.ID, UID: ie.UID, UserID: ie.UserID, Name: e.Name, Properties: e.Properties,
			Timestamp: e.Timestamp, ReceivedAt: ie.ReceivedAt, FromRealtime: true})
	}
	r.Sink.Events(ctx, out)
	return nil
}
