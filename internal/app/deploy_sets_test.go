package app

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/store"
)

// Workers start with the canvases directory each has (ADR 022). Starting
// Huabu on one store with a new set deploys it whole; with an older set
// (a worker whose directory was not updated) nothing at all — no rollback,
// no retiring; with the newest set again it leaves alone what huabu deploy
// deployed since.
func TestOlderCanvasesDirectoryNeverRetiresNewerCanvases(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	ctx := context.Background()
	dir := t.TempDir()
	cfg := exampleConfig(t, dir, nil, nil, nil)
	canvasDir := filepath.Join(dir, "canvases")
	manual := func(id, version string) string {
		return "id: " + id + "\nname: " + version + "\ntrigger: {manual: {}}\nsteps: [{id: done, exit: {}}]\n"
	}
	write := func(files map[string]string) {
		for _, name := range []string{"x.yaml", "y.yaml", "z.yaml"} {
			_ = os.Remove(filepath.Join(canvasDir, name))
		}
		for name, body := range files {
			require.NoError(t, os.WriteFile(filepath.Join(canvasDir, name), []byte(body), 0o644))
		}
	}
	type state struct {
		name   string
		active bool
	}
	canvasesOf := func(st *store.SQLite) map[string]state {
		out := map[string]state{}
		for _, id := range []string{"x", "y", "z"} {
			c, err := st.Canvas(ctx, id)
			if err == store.ErrNotFound {
				continue
			}
			require.NoError(t, err)
			var p struct {
				Name string `json:"name"`
			}
			require.NoError(t, json.Unmarshal(c.Plan, &p))
			out[id] = state{p.Name, c.Active}
		}
		return out
	}
	start := func() (*App, DeployResult) {
		app := startAppIn(t, cfg, dir)
		res, err := app.DeployConfigured(ctx) // what Start did, again: the same set
		require.NoError(t, err)
		return app, res
	}

	oldSet := map[string]string{"x.yaml": manual("x", "x1"), "y.yaml": manual("y", "y1")}
	write(oldSet)
	app, _ := start()
	require.Equal(t, map[string]state{"x": {"x1", true}, "y": {"y1", true}}, canvasesOf(app.Store()))
	require.NoError(t, app.Close())

	write(map[string]string{"x.yaml": manual("x", "x2"), "z.yaml": manual("z", "z1")})
	app, res := start()
	require.False(t, res.Stale)
	require.Equal(t, map[string]state{"x": {"x2", true}, "y": {"y1", false}, "z": {"z1", true}}, canvasesOf(app.Store()), "a new set is deployed whole")
	require.NoError(t, app.Close())

	write(oldSet) // a worker whose directory was not updated
	app, res = start()
	require.True(t, res.Stale)
	require.Equal(t, map[string]state{"x": {"x2", true}, "y": {"y1", false}, "z": {"z1", true}}, canvasesOf(app.Store()), "an older set deploys nothing")
	// An operator deploys a newer x on purpose.
	_, err := app.DeploySources(ctx, map[string][]byte{"x.yaml": []byte(manual("x", "x3"))})
	require.NoError(t, err)
	require.NoError(t, app.Close())

	write(map[string]string{"x.yaml": manual("x", "x2"), "z.yaml": manual("z", "z1")}) // the newest set
	app, res = start()
	require.False(t, res.Stale)
	require.Equal(t, map[string]state{"x": {"x3", true}, "y": {"y1", false}, "z": {"z1", true}}, canvasesOf(app.Store()), "x3, deployed since, stays")
	// The operator rolls x back to x1, a version stored before the set's x2.
	_, err = app.DeploySources(ctx, map[string][]byte{"x.yaml": []byte(manual("x", "x1"))})
	require.NoError(t, err)
	require.NoError(t, app.Close())

	app, res = start() // still the newest set
	require.False(t, res.Stale)
	require.Equal(t, map[string]state{"x": {"x1", true}, "y": {"y1", false}, "z": {"z1", true}}, canvasesOf(app.Store()), "the rollback to x1, deployed since, stays")
}
