package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	thanksCanvas = `id: purchase-thanks
trigger: {event: {name: purchase}}
steps:
  - id: thanks
    push: {channel: outbox, text: "谢谢您的购买"}
`
	newsCanvas = `id: news
trigger: {manual: {}}
steps:
  - id: news
    push: {channel: outbox, text: "本周新品"}
`
)

func testProfiles(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, `{"userId": "u%03d", "traits": {"name": "用户%d", "city": "上海"}}`+"\n", i, i)
	}
	return b.String()
}

// TestRunGuards: `huabu run` on an event-triggered canvas is refused unless
// it names the users (the purchase thank-you must not go to everyone), and
// the API refuses the same; a misspelt canvas gets a suggestion.
func TestRunGuards(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	app := startTestApp(t, map[string]string{"thanks.yaml": thanksCanvas, "news.yaml": newsCanvas}, "run: {confirm_above: 3}\n", testProfiles(5))

	out, errOut, code := huabu(t, append([]string{"run", "purchase-thanks"}, app.server()...)...)
	require.Equal(t, 1, code, out)
	require.Contains(t, errOut, "purchase-thanks starts when purchase happens")
	require.Contains(t, errOut, "huabu run purchase-thanks --users ID,... or --profiles FILE")
	msgs, err := app.Store().Outbox(t.Context(), "purchase-thanks", 10)
	require.NoError(t, err)
	require.Empty(t, msgs, "nothing was sent")

	out, errOut, code = huabu(t, append([]string{"run", "purchase-thanks", "--users", "u002,u004", "--wait"}, app.server()...)...)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, `completed: {"entered":2`)
	msgs, err = app.Store().Outbox(t.Context(), "purchase-thanks", 10)
	require.NoError(t, err)
	require.Len(t, msgs, 2)

	// The API itself refuses, for clients other than the CLI.
	resp, err := http.Post("http://"+app.HTTPAddr()+"/api/v1/canvases/purchase-thanks/runs", "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	var apiErr struct{ Error, Field string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&apiErr))
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Equal(t, "user_ids", apiErr.Field)
	require.Contains(t, apiErr.Error, "purchase-thanks starts when purchase happens")

	_, errOut, code = huabu(t, append([]string{"run", "newz"}, app.server()...)...)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `no deployed canvas "newz" (did you mean "news"?)`)

	// More users than run.confirm_above: asked first (refused without a
	// terminal), started with --yes; a small run goes without asking.
	_, errOut, code = huabu(t, append([]string{"run", "news"}, app.server()...)...)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "news would enter 5 users, more than run.confirm_above (3): pass --yes to start it")
	_, errOut, code = huabu(t, append([]string{"run", "news", "--users", "u001,u002,u003,u004"}, app.server()...)...)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "news would enter 4 users")
	msgs, err = app.Store().Outbox(t.Context(), "news", 10)
	require.NoError(t, err)
	require.Empty(t, msgs, "nothing was sent")
	out, errOut, code = huabu(t, append([]string{"run", "news", "--users", "u001,u002", "--wait"}, app.server()...)...)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, `completed: {"entered":2`)
	out, errOut, code = huabu(t, append([]string{"run", "news", "--yes", "--wait"}, app.server()...)...)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, `completed: {"entered":5`)
}
