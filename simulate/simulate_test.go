package simulate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/config"
	"github.com/huabu/huabu/examples"
	"github.com/huabu/huabu/simulate"
)

func exampleConfig(t *testing.T) *config.Config {
	t.Helper()
	src, err := examples.FS.ReadFile("huabu.yaml")
	require.NoError(t, err)
	cfg, err := config.Parse("huabu.yaml", "", src)
	require.NoError(t, err)
	return cfg
}

func exampleFile(t *testing.T, name string) *bytes.Reader {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "examples", name))
	require.NoError(t, err)
	return bytes.NewReader(raw)
}

func TestSimulateWinbackSmoke(t *testing.T) {
	src, err := examples.FS.ReadFile("canvases/winback-dormant.yaml")
	require.NoError(t, err)
	from := time.Date(2026, 11, 23, 0, 0, 0, 0, time.FixedZone("CST", 8*3600))
	res, err := simulate.Run(context.Background(), simulate.Options{
		Config: exampleConfig(t), File: "winback-dormant.yaml", Source: src, From: from, For: 14 * 24 * time.Hour,
		Profiles: exampleFile(t, "profiles.jsonl"), Staff: exampleFile(t, "staff.jsonl"), Events: io.MultiReader(exampleFile(t, "events.jsonl"), exampleFile(t, "simulate-events.jsonl")),
	})
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, res.WriteText(&out, 5))
	t.Log(out.String())
	out.Reset()
	require.NoError(t, json.NewEncoder(&out).Encode(res))
	t.Log(out.String())
}
