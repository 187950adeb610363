package fakes

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v4"
)

// APNs is a fake of Apple's push gateway: HTTP/2 over TLS, POST
// /3/device/<token>, "authorization: bearer <JWT>" signed ES256 with the
// key it hands out (KeyPEM), apns-topic checked, answers with apns-id or
// {"reason": ...} and the real status codes.
type APNs struct {
	base
	KeyID, TeamID, Topic string
	// Unregistered device tokens get 410 Unregistered.
	Unregistered map[string]bool

	key    *ecdsa.PrivateKey
	mu     sync.Mutex
	pushes []APNsPush
}

// APNsPush is one notification the fake accepted.
type APNsPush struct {
	Token, ApnsID string
	Payload       json.RawMessage
}

// NewAPNs starts an APNs fake with a fresh ES256 auth key.
func NewAPNs(keyID, teamID, topic string) *APNs {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic("fakes: generating an ES256 key: " + err.Error()) // crypto/rand failing is not a test condition
	}
	f := &APNs{KeyID: keyID, TeamID: teamID, Topic: topic, key: key}
	f.init()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(f.handle))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	f.srv = srv
	return f
}

// KeyPEM is the .p8 auth key (PKCS#8 PEM) the channel signs with.
func (f *APNs) KeyPEM() []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(f.key)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// WriteCA writes the fake's TLS certificate as PEM into dir, for ca_file.
func (f *APNs) WriteCA(dir string) (string, error) {
	path := filepath.Join(dir, "apns-fake-ca.pem")
	c := f.srv.Certificate()
	return path, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o600)
}

func apnsReason(w http.ResponseWriter, status int, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	m := map[string]any{"reason": reason}
	if status == http.StatusGone {
		m["timestamp"] = time.Now().UnixMilli()
	}
	_ = json.NewEncoder(w).Encode(m)
}

func (f *APNs) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.record(r, body)
	if r.ProtoMajor != 2 {
		apnsReason(w, http.StatusBadRequest, "BadPath") // APNs speaks HTTP/2 only
		return
	}
	if r.Method != http.MethodPost {
		apnsReason(w, http.StatusMethodNotAllowed, "MethodNotAllowed")
		return
	}
	tok, ok := strings.CutPrefix(r.URL.Path, "/3/device/")
	if !ok {
		apnsReason(w, http.StatusNotFound, "BadPath")
		return
	}
	if reason := f.checkJWT(r.Header.Get("Authorization")); reason != "" {
		apnsReason(w, http.StatusForbidden, reason)
		return
	}
	switch {
	case r.Header.Get("apns-topic") == "":
		apnsReason(w, http.StatusBadRequest, "MissingTopic")
		return
	case r.Header.Get("apns-topic") != f.Topic:
		apnsReason(w, http.StatusBadRequest, "DeviceTokenNotForTopic")
		return
	case len(tok) != 64 || strings.Trim(tok, "0123456789abcdefABCDEF") != "":
		apnsReason(w, http.StatusBadRequest, "BadDeviceToken")
		return
	case f.Unregistered[tok]:
		apnsReason(w, http.StatusGone, "Unregistered")
		return
	case len(body) == 0:
		apnsReason(w, http.StatusBadRequest, "PayloadEmpty")
		return
	case len(body) > 4096:
		apnsReason(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge")
		return
	}
	switch f.Next() {
	case RateLimit:
		apnsReason(w, http.StatusTooManyRequests, "TooManyRequests")
		return
	case ServerError:
		apnsReason(w, http.StatusInternalServerError, "InternalServerError")
		return
	case HTTP5xx:
		apnsReason(w, http.StatusServiceUnavailable, "ServiceUnavailable")
		return
	case TokenExpired:
		apnsReason(w, http.StatusForbidden, "ExpiredProviderToken")
		return
	case Timeout:
		f.hang(r)
		return
	case TimeoutAfterDelivery:
		f.deliver(tok, r.Header.Get("apns-id"), body)
		f.hang(r)
		return
	}
	id := f.deliver(tok, r.Header.Get("apns-id"), body)
	w.Header().Set("apns-id", id)
	w.WriteHeader(http.StatusOK)
}

func (f *APNs) deliver(tok, id string, body []byte) string {
	if id == "" {
		id = "7b2d4c3a-0000-4000-8000-000000000000"
	}
	f.mu.Lock()
	f.pushes = append(f.pushes, APNsPush{Token: tok, ApnsID: id, Payload: append(json.RawMessage(nil), body...)})
	f.mu.Unlock()
	f.add(tok)
	return id
}

// Pushes lists the notifications accepted.
func (f *APNs) Pushes() []APNsPush {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]APNsPush(nil), f.pushes...)
}

func (f *APNs) checkJWT(auth string) string {
	raw, ok := strings.CutPrefix(auth, "bearer ")
	if !ok || raw == "" {
		return "MissingProviderToken"
	}
	tok, err := jwt.Parse(raw, func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodES256 {
			return nil, jwt.ErrSignatureInvalid
		}
		return &f.key.PublicKey, nil
	})
	if err != nil || !tok.Valid {
		return "InvalidProviderToken"
	}
	claims, _ := tok.Claims.(jwt.MapClaims)
	if tok.Header["kid"] != f.KeyID || claims["iss"] != f.TeamID {
		return "InvalidProviderToken"
	}
	if iat, ok := claims["iat"].(float64); !ok || time.Since(time.Unix(int64(iat), 0)) > time.Hour {
		return "ExpiredProviderToken"
	}
	return ""
}
