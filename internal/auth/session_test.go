package auth

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSessionsExpireAndEndWithTheirToken(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	a, err := New([]Token{{Name: "otto", Role: Operator, Secret: "operator-secret-0123456789"}})
	require.NoError(t, err)
	r := httptest.NewRequest("GET", "/", nil)

	_, err = a.Login(r, "wrong-secret-0123456789")
	require.ErrorIs(t, err, ErrBadToken)
	actor, err := a.Login(r, " operator-secret-0123456789 ")
	require.NoError(t, err)
	require.Equal(t, "otto", actor.Name)

	s, err := a.NewSession("otto", now.Add(SessionTTL))
	require.NoError(t, err)
	got, err := a.Session(r, s, now)
	require.NoError(t, err)
	require.Equal(t, Actor{Name: "otto", Role: Operator, Remote: "192.0.2.1"}, got)
	require.NotEmpty(t, a.FormToken(s))

	_, err = a.Session(r, s, now.Add(SessionTTL))
	require.ErrorIs(t, err, ErrBadSession, "expired")
	_, err = a.NewSession("nobody", now.Add(time.Hour))
	require.ErrorIs(t, err, ErrBadSession)

	// The same name with a new secret: the old sessions end.
	rotated, err := New([]Token{{Name: "otto", Role: Operator, Secret: "operator-secret-rotated-99"}})
	require.NoError(t, err)
	_, err = rotated.Session(r, s, now)
	require.ErrorIs(t, err, ErrBadSession)
	require.NotEqual(t, a.FormToken(s), rotated.FormToken(s))
}
