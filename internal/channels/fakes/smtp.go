package fakes

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// SMTP is a tiny in-process SMTP server: EHLO/HELO, optional AUTH PLAIN,
// MAIL, RCPT, DATA, RSET, NOOP, QUIT. Faults apply per message at the end
// of DATA: RateLimit answers 451, ServerError 554, HTTP5xx 421 and closes,
// Timeout never answers, TimeoutAfterDelivery stores and never answers.
type SMTP struct {
	Faults
	Ledger
	// Reject maps an address to the RCPT reply code it gets (550, 452 ...).
	Reject map[string]int
	// User and Password, when set, are required through AUTH PLAIN.
	User, Password string
	Hang           time.Duration

	ln      net.Listener
	mu      sync.Mutex
	mails   []Mail
	closing chan struct{}
	wg      sync.WaitGroup
}

// Mail is one message the fake accepted.
type Mail struct {
	From string
	To   []string
	Data []byte
}

// NewSMTP starts an SMTP fake on 127.0.0.1.
func NewSMTP() (*SMTP, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &SMTP{ln: ln, closing: make(chan struct{}), Hang: 30 * time.Second}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Addr is host:port for channels.email.smtp.
func (s *SMTP) Addr() string { return s.ln.Addr().String() }

// URL is an smtp:// URL of the fake.
func (s *SMTP) URL() string { return "smtp://" + s.Addr() }

// Close stops the server and its sessions.
func (s *SMTP) Close() {
	select {
	case <-s.closing:
	default:
		close(s.closing)
	}
	s.ln.Close()
	s.wg.Wait()
}

// Mails lists the messages accepted.
func (s *SMTP) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

func (s *SMTP) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.session(c)
		}()
	}
}

func (s *SMTP) session(c net.Conn) {
	defer c.Close()
	go func() { <-s.closing; c.Close() }()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	reply := func(format string, args ...any) {
		fmt.Fprintf(w, format+"\r\n", args...)
		w.Flush()
	}
	reply("220 fake.smtp ESMTP ready")
	var from string
	var to []string
	authed := false // read s.User only after the client spoke (settings made before it dialled)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			fmt.Fprintf(w, "250-fake.smtp greets %s\r\n250-8BITMIME\r\n250-AUTH PLAIN\r\n250 SIZE 10485760\r\n", arg)
			w.Flush()
		case "HELO":
			reply("250 fake.smtp")
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			if !strings.EqualFold(mech, "PLAIN") {
				reply("504 5.5.4 unrecognized authentication type")
				continue
			}
			raw, _ := base64.StdEncoding.DecodeString(resp)
			parts := strings.Split(string(raw), "\x00")
			if len(parts) == 3 && parts[1] == s.User && parts[2] == s.Password {
				authed = true
				reply("235 2.7.0 Authentication successful")
			} else {
				reply("535 5.7.8 Authentication credentials invalid")
			}
		case "MAIL":
			if !authed && s.User != "" {
				reply("530 5.7.0 Authentication required")
				continue
			}
			from, to = addrOf(arg), nil
			reply("250 2.1.0 Ok")
		case "RCPT":
			if from == "" {
				reply("503 5.5.1 need MAIL first")
				continue
			}
			a := addrOf(arg)
			if code := s.Reject[a]; code != 0 {
				reply("%d %d.1.1 <%s>: recipient rejected", code, code/100, a)
				continue
			}
			to = append(to, a)
			reply("250 2.1.5 Ok")
		case "DATA":
			if len(to) == 0 {
				reply("554 5.5.1 no valid recipients")
				continue
			}
			reply("354 End data with <CR><LF>.<CR><LF>")
			var data bytes.Buffer
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" || l == ".\n" {
					break
				}
				data.WriteString(strings.TrimPrefix(l, "."))
			}
			switch s.Next() {
			case RateLimit:
				reply("451 4.7.1 try again later")
			case ServerError:
				reply("554 5.7.1 message rejected")
			case HTTP5xx:
				reply("421 4.3.2 service shutting down")
				return
			case Timeout:
				s.hang()
				return
			case TimeoutAfterDelivery:
				s.store(from, to, data.Bytes())
				s.hang()
				return
			default:
				s.store(from, to, data.Bytes())
				reply("250 2.0.0 Ok: queued")
			}
			from, to = "", nil
		case "RSET":
			from, to = "", nil
			reply("250 2.0.0 Ok")
		case "NOOP":
			reply("250 2.0.0 Ok")
		case "QUIT":
			reply("221 2.0.0 Bye")
			return
		default:
			reply("502 5.5.2 command not recognized")
		}
	}
}

func (s *SMTP) hang() {
	t := time.NewTimer(s.Hang)
	defer t.Stop()
	select {
	case <-s.closing:
	case <-t.C:
	}
}

func (s *SMTP) store(from string, to []string, data []byte) {
	s.mu.Lock()
	s.mails = append(s.mails, Mail{From: from, To: append([]string(nil), to...), Data: append([]byte(nil), data...)})
	s.mu.Unlock()
	for _, a := range to {
		s.add(a)
	}
}

// addrOf takes the address out of "FROM:<a@b> SIZE=..." or "TO:<a@b>".
func addrOf(arg string) string {
	if i := strings.IndexByte(arg, '<'); i >= 0 {
		if j := strings.IndexByte(arg[i:], '>'); j > 0 {
			return arg[i+1 : i+j]
		}
	}
	_, a, _ := strings.Cut(arg, ":")
	return strings.TrimSpace(a)
}
