package channels

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/payload"
	"github.com/sideshow/apns2/token"
)

func init() {
	Register(Spec{
		Name: "push", Provider: "apns",
		Doc: "App push to iOS devices through APNs (sideshow/apns2, HTTP/2, token auth with a .p8 key): one request per device token " +
			"(push_registration_id), sent concurrently; Unregistered and BadDeviceToken suppress the token.",
		MaxRecipients: 500, Groupable: false,
		Address: AttrPushRegistrationID,
		Config: []ConfigField{
			{Name: "key_file", Doc: "path of the .p8 auth key (or give key)"},
			{Name: "key", Doc: "the .p8 auth key's PEM text (or give key_file)", Secret: true},
			{Name: "key_id", Doc: "the auth key's Key ID", Required: true},
			{Name: "team_id", Doc: "the Apple developer Team ID", Required: true},
			{Name: "topic", Doc: "the app's bundle id (apns-topic)", Required: true},
			{Name: "host", Doc: "production, development, or a URL (a local fake)", Default: "production"},
			{Name: "ca_file", Doc: "PEM certificates to trust besides the system's (a private gateway or a fake)"},
			{Name: "timeout", Doc: "how long one request may take", Default: "10s"},
			{Name: "concurrency", Doc: "requests in flight per send (HTTP/2 multiplexes them)", Default: "16"},
		},
	}, newAPNs)
}

type apnsPush struct {
	spec        Spec
	client      *apns2.Client
	topic       string
	timeout     time.Duration
	concurrency int
	log         *slog.Logger
	now         func() time.Time
}

func newAPNs(cfg map[string]any, deps Deps) (Channel, error) {
	spec, _, _ := Lookup("push", "apns")
	s := NewSettings(spec, cfg, deps.Logger)
	var key *ecdsa.PrivateKey
	var err error
	switch pem, file := s.Str("key"), s.Str("key_file"); {
	case pem != "":
		key, err = token.AuthKeyFromBytes([]byte(pem))
		s.Check(err == nil, "key: %v", err)
	case file != "":
		key, err = token.AuthKeyFromFile(file)
		s.Check(err == nil, "key_file: %v", err)
	default:
		s.Check(false, "key_file or key is required: the .p8 auth key from the Apple developer account")
	}
	host := s.Str("host")
	switch host {
	case "production":
		host = apns2.HostProduction
	case "development":
		host = apns2.HostDevelopment
	default:
		host = s.BaseURL("host")
	}
	timeout, conc := s.Duration("timeout"), s.Integer("concurrency")
	s.Check(timeout > 0, "timeout: must be more than 0")
	s.Check(conc > 0, "concurrency: must be at least 1")
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if f := s.Str("ca_file"); f != "" {
		pool, perr := x509.SystemCertPool()
		if perr != nil {
			pool = x509.NewCertPool()
		}
		pem, rerr := os.ReadFile(f)
		s.Check(rerr == nil, "ca_file: %v", rerr)
		s.Check(rerr != nil || pool.AppendCertsFromPEM(pem), "ca_file: %s holds no PEM certificate", f)
		tlsConf.RootCAs = pool
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	client := apns2.NewTokenClient(&token.Token{AuthKey: key, KeyID: s.Str("key_id"), TeamID: s.Str("team_id")})
	client.Host = host
	// The library's own transport cannot take extra CAs; this one speaks
	// HTTP/2 over TLS just the same.
	client.HTTPClient = &http.Client{Timeout: timeout, Transport: &http.Transport{
		TLSClientConfig: tlsConf, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 4, IdleConnTimeout: 5 * time.Minute,
	}}
	return &apnsPush{spec: spec, client: client, topic: s.Str("topic"), timeout: timeout, concurrency: conc, log: deps.Logger, now: deps.Now}, nil
}

func (c *apnsPush) Spec() Spec { return c.spec }

func (c *apnsPush) Send(ctx context.Context, b Batch) ([]Outcome, error) {
	res := NewResults(len(b.Deliveries))
	Parallel(ctx, len(b.Deliveries), c.concurrency, func(i int) {
		d := b.Deliveries[i]
		// The device token is the user's push_registration_id: the engine's
		// address for push is the alias when a user has one, which APNs
		// would refuse as a bad token.
		tok := d.Recipient.Attrs[AttrPushRegistrationID]
		if d.Recipient.Attrs == nil {
			tok = d.Recipient.Address // a token given as the address alone
		}
		switch {
		case tok == "":
			res.Fail(i, &Error{Class: Permanent, Reason: ReasonNoAddress, Message: "no push_registration_id (device token)"})
			return
		case d.Message == nil || d.Message.Text == "":
			res.Fail(i, &Error{Class: Permanent, Reason: ReasonInvalidContent, Message: "push needs text"})
			return
		}
		m := d.Message
		p := payload.NewPayload().AlertBody(m.Text).Sound("default")
		if m.Title != "" {
			p.AlertTitle(m.Title)
		}
		if m.URL != "" {
			p.Custom("url", m.URL)
		}
		for k, v := range m.Data {
			p.Custom(k, v)
		}
		n := &apns2.Notification{
			DeviceToken: tok, Topic: c.topic, Payload: p, PushType: apns2.PushTypeAlert,
			// the same id on a retry lets Apple's feedback and our logs match attempts
			ApnsID: uuid.NewSHA1(uuid.NameSpaceURL, []byte(b.Key+"\x00"+d.Recipient.UserID+"\x00"+tok)).String(),
		}
		var wrote atomic.Bool
		cctx, cancel := context.WithTimeout(ctx, c.timeout)
		defer cancel()
		cctx = httptrace.WithClientTrace(cctx, &httptrace.ClientTrace{WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				wrote.Store(true)
			}
		}})
		r, err := c.client.PushWithContext(cctx, n)
		if err != nil {
			res.CallFailed(i, transportError(err, wrote.Load()))
			return
		}
		if r.Sent() {
			res.Sent(i, r.ApnsID)
			return
		}
		e := apnsError(r, c.now())
		if e.Class != Permanent || !SuppressesAddress(e.Reason) {
			c.log.Warn("apns push failed", "batch", b.Key, "token", mask(tok), "status", r.StatusCode, "reason", r.Reason)
		}
		if SuppressesAddress(e.Reason) {
			res.Fail(i, e)
		} else {
			res.CallFailed(i, e)
		}
	})
	return res.Finish()
}

// apnsError classifies an APNs rejection by its reason.
func apnsError(r *apns2.Response, now time.Time) *Error {
	e := &Error{Code: r.Reason, Message: strconv.Itoa(r.StatusCode) + " " + r.Reason}
	switch r.Reason {
	case apns2.ReasonUnregistered, apns2.ReasonExpiredToken:
		e.Class, e.Reason = Permanent, ReasonUnregistered
	case apns2.ReasonBadDeviceToken, apns2.ReasonDeviceTokenNotForTopic, apns2.ReasonMissingDeviceToken:
		e.Class, e.Reason = Permanent, ReasonInvalidAddress
	case apns2.ReasonTooManyRequests, apns2.ReasonTooManyProviderTokenUpdates:
		e.Class, e.Reason, e.RetryAfter = RetryLater, ReasonRateLimited, 30*time.Second
	case apns2.ReasonInternalServerError, apns2.ReasonShutdown, apns2.ReasonIdleTimeout:
		e.Class, e.Reason = RetryNow, ReasonServerError
	case apns2.ReasonServiceUnavailable:
		e.Class, e.Reason, e.RetryAfter = RetryLater, ReasonServerError, 5*time.Second
	case apns2.ReasonExpiredProviderToken:
		e.Class, e.Reason = RetryNow, ReasonTokenExpired
	case apns2.ReasonInvalidProviderToken, apns2.ReasonMissingProviderToken, apns2.ReasonBadCertificate, apns2.ReasonBadCertificateEnvironment,
		apns2.ReasonForbidden, apns2.ReasonBadTopic, apns2.ReasonTopicDisallowed, apns2.ReasonMissingTopic, apns2.ReasonBadPath:
		e.Class, e.Reason = Permanent, ReasonMisconfigured
	case apns2.ReasonPayloadTooLarge, apns2.ReasonPayloadEmpty, apns2.ReasonBadExpirationDate, apns2.ReasonBadPriority,
		apns2.ReasonBadMessageID, apns2.ReasonBadCollapseID, apns2.ReasonInvalidPushType, apns2.ReasonDuplicateHeaders:
		e.Class, e.Reason = Permanent, ReasonInvalidContent
	default:
		se := StatusError(r.StatusCode, http.Header{}, now, nil)
		e.Class, e.Reason, e.RetryAfter = se.Class, se.Reason, se.RetryAfter
	}
	return e
}
