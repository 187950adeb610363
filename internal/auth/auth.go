package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
)

// Role is what a token may do, from least to most.
type Role string

const (
	Viewer   Role = "viewer"   // reads canvases, reports, runs, the audit log
	Operator Role = "operator" // and deploys drafts, runs, test-sends, pauses, suppresses
	Approver Role = "approver" // and approves plan versions (reads too)
	Admin    Role = "admin"    // everything
)

// Roles lists every role, weakest first.
var Roles = []Role{Viewer, Operator, Approver, Admin}

// Permission is one kind of admin action; every admin route needs one.
type Permission string

const (
	Read     Permission = "read"     // canvases, reports, run status, audit log, suppression list
	Deploy   Permission = "deploy"   // new canvas versions (drafts until approved when approval is on)
	Run      Permission = "run"      // start runs, test sends
	Control  Permission = "control"  // pause, resume, stop
	Approve  Permission = "approve"  // approve a plan version
	Suppress Permission = "suppress" // add and remove suppressions
	Forget   Permission = "forget"   // PIPL deletion of users
)

// grants is the role × permission table docs/security.md shows.
var grants = map[Role][]Permission{
	Viewer:   {Read},
	Operator: {Read, Deploy, Run, Control, Suppress},
	Approver: {Read, Approve},
	Admin:    {Read, Deploy, Run, Control, Approve, Suppress, Forget},
}

// Can reports whether the role grants p.
func (r Role) Can(p Permission) bool { return slices.Contains(grants[r], p) }

// Valid reports whether r is a known role.
func (r Role) Valid() bool { _, ok := grants[r]; return ok }

// Token is one entry of auth.tokens.
type Token struct {
	Name   string
	Role   Role
	Secret string
}

// MinSecretBytes is the shortest token accepted: guessing 16 random bytes
// over HTTP is out of reach.
const MinSecretBytes = 16

// Actor is who does something: a token's name and role, or "local" for a
// loopback client when no tokens are configured, or System for Huabu
// itself (the deploy at start, provider callbacks).
type Actor struct {
	Name   string `json:"name"`
	Role   Role   `json:"role,omitempty"`
	Remote string `json:"remote,omitempty"` // the client's address (host, no port)
}

// System is the actor of what Huabu does on its own.
var System = Actor{Name: "system"}

// LocalName is the actor name of loopback clients when no tokens are configured.
const LocalName = "local"

type actorKey struct{}

// WithActor returns ctx carrying who acts.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor ctx carries, or System.
func ActorFrom(ctx context.Context) Actor {
	if a, ok := ctx.Value(actorKey{}).(Actor); ok {
		return a
	}
	return System
}

// Errors of Authenticate; server answers the first 401 and the others 403.
var (
	ErrNoCredential = errors.New("a bearer token is required: Authorization: Bearer TOKEN (the CLI reads HUABU_TOKEN or --token)")
	ErrBadToken     = errors.New("the bearer token is not valid")
	ErrNotLoopback  = errors.New("no auth.tokens are configured, so the admin API answers loopback clients only; configure auth.tokens to reach it from elsewhere")
)

// Authenticator checks bearer tokens against auth.tokens.
type Authenticator struct {
	tokens  []Token
	digests [][sha256.Size]byte
}

// New checks the tokens and builds an Authenticator. With none, only
// loopback clients are let in (as admin, named "local").
func New(tokens []Token) (*Authenticator, error) {
	a := &Authenticator{}
	names := map[string]bool{}
	for i, t := range tokens {
		where := fmt.Sprintf("auth.tokens[%d]", i)
		switch {
		case strings.TrimSpace(t.Name) == "":
			return nil, fmt.Errorf("%s.name is required: the audit log records it", where)
		case names[t.Name]:
			return nil, fmt.Errorf("%s.name: %q is used twice", where, t.Name)
		case !t.Role.Valid():
			return nil, fmt.Errorf("%s.role: %q is not one of viewer, operator, approver, admin", where, t.Role)
		case t.Secret == "":
			return nil, fmt.Errorf("%s.token (%s) is empty: is its ${VARIABLE} set in this environment?", where, t.Name)
		case len(t.Secret) < MinSecretBytes:
			return nil, fmt.Errorf("%s.token (%s) is %d bytes; use at least %d random bytes (e.g. openssl rand -hex 32)", where, t.Name, len(t.Secret), MinSecretBytes)
		}
		names[t.Name] = true
		d := sha256.Sum256([]byte(t.Secret))
		if slices.Contains(a.digests, d) {
			return nil, fmt.Errorf("%s.token (%s) is the same as another token's", where, t.Name)
		}
		a.tokens = append(a.tokens, t)
		a.digests = append(a.digests, d)
	}
	return a, nil
}

// Open reports whether no tokens are configured (loopback-only mode).
func (a *Authenticator) Open() bool { return len(a.tokens) == 0 }

// Authenticate finds the actor of a request.
func (a *Authenticator) Authenticate(r *http.Request) (Actor, error) {
	remote := remoteHost(r)
	if a.Open() {
		// A proxy in front makes every client look local: refuse what it forwards.
		if !isLoopback(remote) || r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("Forwarded") != "" {
			return Actor{Remote: remote}, ErrNotLoopback
		}
		return Actor{Name: LocalName, Role: Admin, Remote: remote}, nil
	}
	secret, ok := bearer(r)
	if !ok {
		return Actor{Remote: remote}, ErrNoCredential
	}
	t, ok := a.match(secret)
	if !ok {
		return Actor{Remote: remote}, ErrBadToken
	}
	return Actor{Name: t.Name, Role: t.Role, Remote: remote}, nil
}

// match compares the secret with every token in constant time (digests, so
// lengths do not leak either) and without stopping at the first match.
func (a *Authenticator) match(secret string) (Token, bool) {
	d := sha256.Sum256([]byte(secret))
	found := -1
	for i := range a.digests {
		if subtle.ConstantTimeCompare(d[:], a.digests[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Token{}, false
	}
	return a.tokens[found], true
}

// bearer reads Authorization: Bearer TOKEN.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	rest = strings.TrimSpace(rest)
	return rest, rest != ""
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
