package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Browser sessions for the console. A browser cannot send a bearer header
// when it follows a link, so a person types a token once into the login
// form and gets a session: the token's name and an expiry, signed with a
// key derived from that token's secret. Nothing is kept on the server, any
// Huabu process with the same auth.tokens accepts it, and rotating a token
// ends its sessions.

// ErrBadSession means a session value is malformed, expired, forged or of
// a token that is no longer configured.
var ErrBadSession = errors.New("the session is not valid (expired, or its token changed): log in again")

// SessionTTL is how long a console session lasts.
const SessionTTL = 12 * time.Hour

// Login checks a token typed into the console's login form.
func (a *Authenticator) Login(r *http.Request, secret string) (Actor, error) {
	remote := remoteHost(r)
	t, ok := a.match(strings.TrimSpace(secret))
	if !ok {
		return Actor{Remote: remote}, ErrBadToken
	}
	return Actor{Name: t.Name, Role: t.Role, Remote: remote}, nil
}

// NewSession returns the session value of a token's name, valid until expires.
func (a *Authenticator) NewSession(name string, expires time.Time) (string, error) {
	key, ok := a.sessionKey(name)
	if !ok {
		return "", ErrBadSession
	}
	body := base64.RawURLEncoding.EncodeToString([]byte(name)) + "." + strconv.FormatInt(expires.Unix(), 10)
	return body + "." + sign(key, "session", body), nil
}

// Session finds the actor of a session value at now.
func (a *Authenticator) Session(r *http.Request, value string, now time.Time) (Actor, error) {
	remote := remoteHost(r)
	parts := strings.Split(value, ".")
	if len(parts) != 3 {
		return Actor{Remote: remote}, ErrBadSession
	}
	rawName, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return Actor{Remote: remote}, ErrBadSession
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || now.Unix() >= exp {
		return Actor{Remote: remote}, ErrBadSession
	}
	name := string(rawName)
	key, ok := a.sessionKey(name)
	if !ok {
		return Actor{Remote: remote}, ErrBadSession
	}
	want := sign(key, "session", parts[0]+"."+parts[1])
	if subtle.ConstantTimeCompare([]byte(want), []byte(parts[2])) != 1 {
		return Actor{Remote: remote}, ErrBadSession
	}
	t := a.tokens[a.index(name)]
	return Actor{Name: t.Name, Role: t.Role, Remote: remote}, nil
}

// FormToken is the anti-CSRF token of a session: forms of the console
// carry it, and a POST with a session cookie needs it. Another site can
// make a browser send the cookie but cannot read this token.
func (a *Authenticator) FormToken(session string) string {
	parts := strings.Split(session, ".")
	if len(parts) != 3 {
		return ""
	}
	rawName, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return ""
	}
	key, ok := a.sessionKey(string(rawName))
	if !ok {
		return ""
	}
	return sign(key, "form", session)
}

// sessionKey derives the signing key of a token's sessions from its secret.
func (a *Authenticator) sessionKey(name string) ([]byte, bool) {
	i := a.index(name)
	if i < 0 {
		return nil, false
	}
	k := sha256.Sum256([]byte("huabu console session\x00" + a.tokens[i].Secret))
	return k[:], true
}

func (a *Authenticator) index(name string) int {
	for i, t := range a.tokens {
		if t.Name == name {
			return i
		}
	}
	return -1
}

// sign is the base64 HMAC-SHA256 of purpose and data under key.
func sign(key []byte, purpose, data string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(purpose + "\x00" + data))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
