package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const greetCanvas = `id: greet
trigger: {manual: {}}
steps:
  - id: hello
    push: {channel: outbox, text: "{{ .user.name }}，{{ .user.city }}的新品到了"}
`

// TestValidatePreviewAndTestSend: `huabu validate --preview USER` prints
// each message rendered for the user; `huabu test-send` sends a step to the
// config's test users, marked [TEST], audited, and in no report.
func TestValidatePreviewAndTestSend(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	app := startTestApp(t, map[string]string{"greet.yaml": greetCanvas}, "test_users: [u002]\n", testProfiles(3))
	dir := filepath.Join(app.dir, "canvases")

	out, errOut, code := huabu(t, append([]string{"validate", dir, "--preview", "u001,u003"}, app.server()...)...)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "greet (plan ")
	require.Contains(t, out, "  u001\n    hello  outbox → u00***\n      用户1，上海的新品到了\n")
	require.Contains(t, out, "  u003\n    hello  outbox → u00***\n      用户3，上海的新品到了\n")

	_, errOut, code = huabu(t, append([]string{"validate", dir, "--preview", "nobody"}, app.server()...)...)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no profile for nobody")

	out, errOut, code = huabu(t, append([]string{"test-send", "greet", "--step", "hello"}, app.server()...)...)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "test send of greet step hello")
	require.Contains(t, out, "u002  outbox → u00***  sent\n      [TEST] 用户2，上海的新品到了")

	msgs, err := app.Store().Outbox(context.Background(), "greet", 10)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.Contains(t, string(msgs[0].Message), "[TEST] 用户2，上海的新品到了")

	out, errOut, code = huabu(t, append([]string{"audit", "--action", "test-send"}, app.server()...)...)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "test-send")
	require.Contains(t, out, "greet")

	out, errOut, code = huabu(t, append([]string{"report", "greet"}, app.server()...)...)
	require.Equal(t, 0, code, errOut)
	require.NotContains(t, out, "1 (outbox)", "a test send is in no report")

	_, errOut, code = huabu(t, append([]string{"test-send", "greet", "--step", "nope"}, app.server()...)...)
	require.Equal(t, 1, code)
	require.True(t, strings.Contains(errOut, `no step "nope"`), errOut)
}
