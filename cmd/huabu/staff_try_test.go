package main

import (
	"fmt"
	"log/slog"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/channels/wecom"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/server"
)

// TestWeComFakeConfig keeps examples/huabu-wecom-fake.yaml — the config of
// the README's "Staff SOP (try it)" — working: it validates with the
// example canvases, its wecom section is what `huabu fake wecom` accepts
// by default, and its callback settings start the /wecom/callback handler.
func TestWeComFakeConfig(t *testing.T) {
	chdirRepoRoot(t)
	const path = "examples/huabu-wecom-fake.yaml"
	out, errOut, code := huabu(t, "validate", "-c", path, "examples/canvases")
	require.Equal(t, 0, code, errOut)
	require.Empty(t, out)

	cfg, err := config.Load(path)
	require.NoError(t, err)
	require.Equal(t, "wecom", cfg.Provider("wecom"))
	section := cfg.Channels["wecom"]
	flags := (&cli{}).fakeCmd().Flags()
	def := func(name string) string { return flags.Lookup(name).DefValue }
	require.Equal(t, def("corp-id"), section["corp_id"])
	require.Equal(t, def("secret"), section["secret"])
	require.Equal(t, def("agent-id"), toString(section["agent_id"]))
	u, err := url.Parse(toString(section["base_url"]))
	require.NoError(t, err)
	require.Equal(t, def("listen"), u.Host, "base_url is where the fake listens")
	_, err = wecom.NewAPI(section, channels.Deps{})
	require.NoError(t, err)

	cb, _ := section["callback"].(map[string]any)
	require.NotNil(t, cb, "the callback is on, so the fake can acknowledge staff briefs")
	_, err = server.NewWeComCallback(server.WeComCallbackConfig{Token: toString(cb["token"]), AESKey: toString(cb["aes_key"]), CorpID: toString(section["corp_id"])},
		nil, nil, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	for _, ch := range []string{"sms", "push", "email", "webhook"} {
		require.Equal(t, "outbox", cfg.Provider(ch), ch)
	}
}

func toString(v any) string { return fmt.Sprint(v) }
