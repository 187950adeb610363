package channels

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"
)

func init() {
	Register(Spec{
		Name: "email", Provider: "smtp",
		Doc: "Email over SMTP (net/smtp): one message per recipient (multipart/alternative when both text and html are given) " +
			"over one connection per send; a rejected RCPT fails only that recipient.",
		MaxRecipients: 100, Groupable: false,
		Address: AttrEmail,
		Config: []ConfigField{
			{Name: "smtp", Doc: "the server as host:port", Required: true},
			{Name: "from", Doc: "the From address, e.g. \"Huabu <noreply@example.com>\"", Required: true},
			{Name: "username", Doc: "SMTP AUTH PLAIN user name (empty: no auth)"},
			{Name: "password", Doc: "SMTP AUTH PLAIN password", Secret: true},
			{Name: "tls", Doc: "starttls (use it when offered, required with auth), tls (implicit, port 465) or none", Default: "starttls"},
			{Name: "helo", Doc: "the name sent in EHLO", Default: "localhost"},
			{Name: "timeout", Doc: "how long one SMTP exchange may take", Default: "30s"},
		},
	}, newSMTP)
}

type smtpMail struct {
	spec      Spec
	addr      string
	host      string
	from      *mail.Address
	user, pwd string
	tlsMode   string
	helo      string
	timeout   time.Duration
	log       *slog.Logger
	now       func() time.Time
}

func newSMTP(cfg map[string]any, deps Deps) (Channel, error) {
	spec, _, _ := Lookup("email", "smtp")
	s := NewSettings(spec, cfg, deps.Logger)
	c := &smtpMail{spec: spec, addr: s.Str("smtp"), user: s.Str("username"), pwd: s.Str("password"),
		tlsMode: s.Str("tls"), helo: s.Str("helo"), timeout: s.Duration("timeout"), log: deps.Logger, now: deps.Now}
	if c.addr != "" {
		host, _, err := net.SplitHostPort(c.addr)
		s.Check(err == nil, "smtp: %q is not host:port", c.addr)
		c.host = host
	}
	if f := s.Str("from"); f != "" {
		a, err := mail.ParseAddress(f)
		s.Check(err == nil, "from: %q is not an email address", f)
		c.from = a
	}
	s.Check(c.tlsMode == "starttls" || c.tlsMode == "tls" || c.tlsMode == "none", "tls: %q is not starttls, tls or none", c.tlsMode)
	s.Check(c.timeout > 0, "timeout: must be more than 0")
	if err := s.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *smtpMail) Spec() Spec { return c.spec }

func (c *smtpMail) Send(ctx context.Context, b Batch) ([]Outcome, error) {
	res := NewResults(len(b.Deliveries))
	var todo []int
	msgs := make([][]byte, len(b.Deliveries))
	tos := make([]string, len(b.Deliveries))
	for i, d := range b.Deliveries {
		if d.Recipient.Address == "" {
			res.Fail(i, &Error{Class: Permanent, Reason: ReasonNoAddress, Message: "no email"})
			continue
		}
		to, err := mail.ParseAddress(d.Recipient.Address)
		if err != nil || strings.ContainsAny(to.Address, "\r\n") {
			res.Fail(i, &Error{Class: Permanent, Reason: ReasonInvalidAddress, Message: "not an email address: " + mask(d.Recipient.Address)})
			continue
		}
		msg, e := c.compose(b, d, to)
		if e != nil {
			res.Fail(i, e)
			continue
		}
		msgs[i], tos[i] = msg, to.Address
		todo = append(todo, i)
	}
	if len(todo) == 0 {
		return res.Finish()
	}
	cl, conn, e := c.dial(ctx)
	if e != nil {
		for _, i := range todo {
			res.CallFailed(i, e)
		}
		return res.Finish()
	}
	defer conn.Close()
	for k, i := range todo {
		if err := ctx.Err(); err != nil {
			for _, j := range todo[k:] {
				res.CallFailed(j, &Error{Class: RetryNow, Reason: ReasonCanceled, Message: err.Error()})
			}
			break
		}
		e, broken := c.deliver(cl, conn, tos[i], msgs[i])
		if e == nil {
			res.Sent(i, messageID(b, b.Deliveries[i]))
		} else {
			res.Fail(i, e)
		}
		if broken { // the connection is gone: nothing after this was tried
			for _, j := range todo[k+1:] {
				res.CallFailed(j, &Error{Class: RetryNow, Reason: ReasonConnectionLost, Message: "SMTP connection lost before this message"})
			}
			break
		}
	}
	_ = cl.Quit()
	return res.Finish()
}

// dial connects, says EHLO, upgrades to TLS and authenticates.
func (c *smtpMail) dial(ctx context.Context) (*smtp.Client, net.Conn, *Error) {
	d := net.Dialer{Timeout: c.timeout}
	var conn net.Conn
	var err error
	if c.tlsMode == "tls" {
		conn, err = (&tls.Dialer{NetDialer: &d, Config: &tls.Config{ServerName: c.host}}).DialContext(ctx, "tcp", c.addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", c.addr)
	}
	if err != nil {
		return nil, nil, transportError(err, false)
	}
	_ = conn.SetDeadline(time.Now().Add(c.timeout))
	fail := func(err error) (*smtp.Client, net.Conn, *Error) {
		conn.Close()
		e := smtpError(err, false)
		if e.Class == Ambiguous || e.Class == Permanent && e.Reason == ReasonRejected {
			// nothing is sent while the session is being set up
			e.Class, e.Reason = RetryNow, ReasonServerError
		}
		return nil, nil, e
	}
	cl, err := smtp.NewClient(conn, c.host)
	if err != nil {
		return fail(err)
	}
	if err := cl.Hello(c.helo); err != nil {
		return fail(err)
	}
	if c.tlsMode == "starttls" {
		if ok, _ := cl.Extension("STARTTLS"); ok {
			if err := cl.StartTLS(&tls.Config{ServerName: c.host}); err != nil {
				return fail(err)
			}
		}
	}
	if c.user != "" {
		if err := cl.Auth(smtp.PlainAuth("", c.user, c.pwd, c.host)); err != nil {
			var te *textproto.Error
			if errors.As(err, &te) || strings.Contains(err.Error(), "unencrypted") {
				conn.Close()
				return nil, nil, &Error{Class: Permanent, Reason: ReasonMisconfigured, Message: "SMTP auth: " + err.Error()}
			}
			return fail(err)
		}
	}
	return cl, conn, nil
}

// deliver sends one message; broken reports that the session cannot go on.
func (c *smtpMail) deliver(cl *smtp.Client, conn net.Conn, to string, msg []byte) (e *Error, broken bool) {
	_ = conn.SetDeadline(time.Now().Add(c.timeout))
	if err := cl.Mail(c.from.Address); err != nil {
		e := smtpError(err, false)
		_ = cl.Reset()
		return e, !isReply(err)
	}
	if err := cl.Rcpt(to); err != nil {
		e := smtpError(err, false)
		_ = cl.Reset()
		return e, !isReply(err)
	}
	w, err := cl.Data()
	if err != nil {
		e := smtpError(err, false)
		_ = cl.Reset()
		return e, !isReply(err)
	}
	if _, err := w.Write(msg); err != nil {
		return smtpError(err, false), true // the server never saw the final dot
	}
	// Close writes the final dot and reads the server's verdict: a failure
	// now may come after the server took the message.
	if err := w.Close(); err != nil {
		return smtpError(err, true), !isReply(err)
	}
	return nil, false
}

func isReply(err error) bool {
	var te *textproto.Error
	return errors.As(err, &te)
}

// smtpError classifies an SMTP reply or a connection failure; afterDot says
// whether the whole message had been written.
func smtpError(err error, afterDot bool) *Error {
	var te *textproto.Error
	if !errors.As(err, &te) {
		if afterDot {
			return transportError(err, true)
		}
		return transportError(err, false)
	}
	e := &Error{Code: fmt.Sprint(te.Code), Message: te.Msg}
	switch {
	case te.Code == 550 || te.Code == 551 || te.Code == 553 || te.Code == 501 && !afterDot:
		e.Class, e.Reason = Permanent, ReasonInvalidAddress
	case te.Code == 552 || te.Code == 452:
		e.Class, e.Reason, e.RetryAfter = RetryLater, ReasonOverQuota, time.Hour
	case te.Code == 421:
		e.Class, e.Reason, e.RetryAfter = RetryLater, ReasonServerError, time.Minute
	case te.Code == 450 || te.Code == 451:
		e.Class, e.Reason, e.RetryAfter = RetryLater, ReasonRateLimited, 5*time.Minute // greylisting, local trouble
	case te.Code == 530 || te.Code == 535 || te.Code == 534:
		e.Class, e.Reason = Permanent, ReasonMisconfigured
	case te.Code == 554 && afterDot:
		e.Class, e.Reason = Permanent, ReasonContentRejected
	case te.Code >= 400 && te.Code < 500:
		e.Class, e.Reason, e.RetryAfter = RetryLater, ReasonServerError, time.Minute
	default:
		e.Class, e.Reason = Permanent, ReasonRejected
	}
	return e
}

// compose builds the RFC 5322 message.
func (c *smtpMail) compose(b Batch, d Delivery, to *mail.Address) ([]byte, *Error) {
	m := d.Message
	if m == nil || (m.Text == "" && m.HTML == "") {
		return nil, &Error{Class: Permanent, Reason: ReasonInvalidContent, Message: "email needs text or html"}
	}
	var buf bytes.Buffer
	h := func(k, v string) { fmt.Fprintf(&buf, "%s: %s\r\n", k, v) }
	h("From", c.from.String())
	h("To", to.String())
	h("Subject", mime.QEncoding.Encode("utf-8", strings.NewReplacer("\r", "", "\n", " ").Replace(m.Subject)))
	h("Date", c.now().Format(time.RFC1123Z))
	h("Message-ID", "<"+messageID(b, d)+"@"+domainOf(c.from.Address)+">")
	h("MIME-Version", "1.0")
	part := func(w io.Writer, body string) {
		qp := quotedprintable.NewWriter(w)
		_, _ = qp.Write([]byte(body))
		_ = qp.Close()
	}
	switch {
	case m.Text != "" && m.HTML != "":
		mw := multipart.NewWriter(&buf)
		h("Content-Type", "multipart/alternative; boundary="+mw.Boundary())
		buf.WriteString("\r\n")
		for _, p := range []struct{ typ, body string }{{"text/plain", m.Text}, {"text/html", m.HTML}} {
			w, _ := mw.CreatePart(textproto.MIMEHeader{
				"Content-Type":              {p.typ + "; charset=utf-8"},
				"Content-Transfer-Encoding": {"quoted-printable"},
			})
			part(w, p.body)
		}
		_ = mw.Close()
	default:
		typ, body := "text/plain", m.Text
		if m.HTML != "" {
			typ, body = "text/html", m.HTML
		}
		h("Content-Type", typ+"; charset=utf-8")
		h("Content-Transfer-Encoding", "quoted-printable")
		buf.WriteString("\r\n")
		part(&buf, body)
	}
	return buf.Bytes(), nil
}

// messageID is stable for a delivery, so a resent message can be matched.
func messageID(b Batch, d Delivery) string {
	sum := sha256.Sum256([]byte(b.RunID + "\x00" + b.StepID + "\x00" + d.Recipient.UserID + "\x00" + d.Recipient.Address))
	return hex.EncodeToString(sum[:12])
}

func domainOf(addr string) string {
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		return addr[at+1:]
	}
	return "huabu.local"
}
