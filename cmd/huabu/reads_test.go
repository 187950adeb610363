package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/app"
	"github.com/huabu/huabu/internal/config"
)

const staffCanvas = `id: brief
trigger: {manual: {}}
steps:
  - id: task
    staff_task:
      text: "今日推荐：会员日专属权益已上线"
      deadline: 9h
`

// TestReadCommandsUseTheAPI: report, outbox, runs and the staff report ask
// the running Huabu, whatever --data says (the store is the server's), and
// every time they print carries its zone: the config's, or --tz.
func TestReadCommandsUseTheAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	profiles := testProfiles(3) + `{"userId": "c1", "traits": {"name": "王芳", "owner": "lina", "wecom_external_userid": "wm1"}}` + "\n"
	app := startTestApp(t, map[string]string{"news.yaml": newsCanvas, "brief.yaml": staffCanvas}, "", profiles)
	elsewhere := filepath.Join(t.TempDir(), "nothing-here")
	cli := func(args ...string) string {
		t.Helper()
		out, errOut, code := huabu(t, append(append(args, app.server()...), "--data", elsewhere)...)
		require.Equal(t, 0, code, errOut)
		return out
	}
	require.Contains(t, cli("run", "news", "--wait"), "run 1 completed")
	out := cli("run", "brief", "--wait")
	require.Contains(t, out, "task: 1 staff task(s) for 1 customer(s): 1 recorded in the outbox (no WeCom configured: nothing was sent)", "not \"sent 0\"")
	require.Regexp(t, `(?m)^task +4 +— +0 +3 \(no_owner 3\) `, out, "a staff_task step sends nothing itself; customers nobody owns are suppressed")

	stamp := regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d`)
	out = cli("report", "news")
	require.Contains(t, out, "news (", out)
	require.Regexp(t, `(?m)^news +4 +4 \(outbox\)`, out, "sent to the outbox is marked so")
	require.Contains(t, out, "recorded, not delivered")
	require.Contains(t, out, "+08:00", "the config's zone (Asia/Shanghai by default)")

	out = cli("outbox", "--canvas", "news")
	require.Len(t, strings.Split(strings.TrimSpace(out), "\n"), 4)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		require.Regexp(t, `^`+stamp.String()+`  news/news`, line)
		require.Contains(t, line, "+08:00")
	}
	require.Contains(t, cli("outbox", "--canvas", "news", "--tz", "UTC"), "+00:00")

	out = cli("runs")
	require.Regexp(t, `(?m)^2 +brief +manual +completed +4 +`+stamp.String(), out)
	require.Regexp(t, `(?m)^1 +news +manual +completed +4 +`, out)
	out = cli("runs", "--id", "2", "--tz", "America/New_York")
	require.Contains(t, out, "run 2 of brief: Completed, started ")
	require.Regexp(t, `-0[45]:00`, out)

	var status map[string]any
	require.NoError(t, json.Unmarshal([]byte(cli("runs", "--id", "1", "--json")), &status))
	steps, _ := status["steps"].([]any)
	require.Len(t, steps, 1, "per-step progress")
	require.Equal(t, float64(4), steps[0].(map[string]any)["sent"])

	require.Contains(t, cli("report", "brief", "--staff"), "1 task(s) were recorded in the outbox")
	_, err := os.Stat(elsewhere)
	require.True(t, os.IsNotExist(err), "reading never creates a store under --data")

	// Nothing listening: said plainly, with how to start it.
	_, errOut, code := huabu(t, "report", "news", "-c", app.cfgPath, "--server", "http://127.0.0.1:1")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "nothing is running at http://127.0.0.1:1: start Huabu first (huabu dev -c "+app.cfgPath+")")
}

// TestImportRefusesAnotherStore: while a Huabu runs, `huabu import` writes
// only the store that Huabu uses; a wrong --data is refused, naming it.
func TestImportRefusesAnotherStore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	app := startTestApp(t, map[string]string{"news.yaml": newsCanvas}, "", "")
	file := filepath.Join(t.TempDir(), "profiles.jsonl")
	require.NoError(t, os.WriteFile(file, []byte(testProfiles(2)), 0o644))

	wrong := filepath.Join(t.TempDir(), "data")
	_, errOut, code := huabu(t, append([]string{"import", "profiles", file, "--data", wrong}, app.server()...)...)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "uses another store: there is none at "+filepath.Join(wrong, "huabu.db"))
	_, err := os.Stat(wrong)
	require.True(t, os.IsNotExist(err), "nothing was created there")

	other := startTestApp(t, map[string]string{"news.yaml": newsCanvas}, "", "")
	otherData := filepath.Join(other.dir, "data")
	_, errOut, code = huabu(t, append([]string{"import", "profiles", file, "--data", otherData}, app.server()...)...)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "uses another store than "+filepath.Join(otherData, "huabu.db"))

	out, errOut, code := huabu(t, append([]string{"import", "profiles", file, "--data", filepath.Join(app.dir, "data")}, app.server()...)...)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "imported 2 profiles")
}

// TestSecondHuabuIsNamed: a second Huabu on the same data directory, or on
// the same HTTP port, is refused with which process holds it.
func TestSecondHuabuIsNamed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	ta := startTestApp(t, map[string]string{"news.yaml": newsCanvas}, "", "")
	cfg, err := config.Load(ta.cfgPath)
	require.NoError(t, err)
	_, err = app.Start(context.Background(), app.Options{Config: cfg, DataDir: filepath.Join(ta.dir, "data"), TemporalPort: 0})
	var inUse *app.DataDirInUseError
	require.ErrorAs(t, err, &inUse)
	require.Equal(t, os.Getpid(), inUse.Holder.PID)
	require.Contains(t, err.Error(), "is in use by another Huabu (pid ")
	require.Contains(t, err.Error(), "give this one its own --data DIR")

	cfg.HTTP.Listen = ta.HTTPAddr()
	_, err = app.Start(context.Background(), app.Options{Config: cfg, DataDir: t.TempDir(), TemporalPort: 0})
	var addr *app.AddrInUseError
	require.ErrorAs(t, err, &addr)
	require.NotNil(t, addr.Holder, "the port's holder answered as a Huabu")
	require.Equal(t, os.Getpid(), addr.Holder.PID)
	require.Contains(t, err.Error(), "http.listen "+ta.HTTPAddr()+" is in use by another Huabu (pid ")
}
