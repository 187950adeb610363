package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/store"
)

// TestImportEvents loads JSONL track payloads with the example config:
// rejects come with their line numbers, the rest is stored once however
// often the import runs, and the users' traits and RFM are recomputed.
func TestImportEvents(t *testing.T) {
	chdirRepoRoot(t)
	dir := t.TempDir()
	now := time.Now().UTC()
	lines := []string{
		fmt.Sprintf(`{"userId":"u001","event":"purchase","properties":{"amount":120,"order_id":"o1"},"timestamp":%q}`, now.AddDate(0, 0, -3).Format(time.RFC3339)),
		fmt.Sprintf(`{"userId":"u001","event":"purchase","properties":{"amount":80},"timestamp":%q,"messageId":"o2"}`, now.AddDate(0, 0, -1).Format(time.RFC3339)),
		`{"userId":"u002","event":"purchase","properties":{"amount":"lots"},"timestamp":"2026-01-02T10:00:00Z"}`,
		``,
		`{"event":"app_open","timestamp":"2026-01-02T10:00:00Z"}`,
		`{"userId":"u003","event":"app_open"}`,
		`{"userId":"u003","event":"app_open",`,
		fmt.Sprintf(`{"userId":"u003","event":"app_open","timestamp":%q}`, now.Add(-time.Hour).Format(time.RFC3339)),
	}
	file := filepath.Join(dir, "events.jsonl")
	require.NoError(t, os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	data := filepath.Join(dir, "data")
	// The example config on a port of its own: the CLI asks a Huabu at the
	// configured address which store it uses, and another one on 8080 (a
	// README test, someone's huabu dev) is not the one this test means.
	raw, err := os.ReadFile("examples/huabu.yaml")
	require.NoError(t, err)
	examples, err := filepath.Abs("examples")
	require.NoError(t, err)
	text := strings.Replace(string(raw), "listen: 127.0.0.1:8080", "listen: 127.0.0.1:0", 1)
	text = strings.Replace(text, "canvases: ./canvases", "canvases: "+filepath.Join(examples, "canvases"), 1)
	require.NotEqual(t, string(raw), text)
	cfg := filepath.Join(dir, "huabu.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(text), 0o644))

	out, errOut, code := huabu(t, "import", "events", file, "-c", cfg, "--data", data)
	require.Equal(t, 1, code, "rejected lines make the import fail: %s", errOut)
	got := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, got, 6, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.True(t, strings.HasPrefix(got[0], file+`:line 3: properties.amount: expected a number, got "lots"`), got[0])
	require.Regexp(t, `^`+file+`:line 5: userId: `, got[1])
	require.Regexp(t, `^`+file+`:line 6: timestamp: `, got[2])
	require.Regexp(t, `^`+file+`:line 7: `, got[3])
	require.Regexp(t, `^imported 3 events in .* 0 already imported, 4 rejected$`, got[4])
	require.Regexp(t, `^recomputed the traits of \d+ profiles in `, got[5])

	out, _, code = huabu(t, "import", "events", file, "-c", cfg, "--data", data)
	require.Equal(t, 1, code)
	require.Contains(t, out, "imported 0 events in", "re-running stores nothing twice")
	require.Contains(t, out, "3 already imported")

	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(data, "huabu.db"))
	require.NoError(t, err)
	defer st.Close()
	n, err := st.CountEvents(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(3), n)
	row, err := st.ProfileByID(ctx, "u001")
	require.NoError(t, err)
	var doc struct {
		Traits map[string]any
		RFM    map[string]any
	}
	require.NoError(t, json.Unmarshal(row.Doc, &doc), string(row.Doc))
	require.Equal(t, 2.0, doc.Traits["orders_30d"], string(row.Doc))
	require.Equal(t, 200.0, doc.Traits["spend_90d"], string(row.Doc))
	require.Equal(t, 1.0, doc.Traits["days_since_last_order"], string(row.Doc))
	require.NotEmpty(t, doc.RFM, string(row.Doc))

	_, errOut, code = huabu(t, "import", "clicks", file)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "use profiles, events or staff")
}
