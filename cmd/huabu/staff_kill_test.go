package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/channels/fakes"
	"github.com/huabu/huabu/internal/store"
)

// TestKillBetweenCreatingAndRecordingStaffTasks: SIGKILL `huabu dev` after
// WeCom created lina's mass-send task and before Huabu recorded it (the
// fake creates the task and withholds the answer; the test kills the
// process the moment the task exists), start it again, and the run
// finishes with one task per staff member: the restarted worker finds
// lina's task on WeCom and adopts it instead of creating a second one.
func TestKillBetweenCreatingAndRecordingStaffTasks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal twice")
	}
	fake := fakes.NewWeCom("ww-corp", "secret", "1000002")
	defer fake.Close()
	fake.Hang = time.Minute
	staff := []string{"lina", "wangfang", "zhangwei"}
	var profiles []string
	for i := 0; i < 9; i++ {
		owner, ext := staff[i%3], fmt.Sprintf("wmK%02d", i)
		fake.AddContact(owner, ext, "")
		profiles = append(profiles, fmt.Sprintf(`{"userId":"k%02d","traits":{"name":"客户%d","owner":%q,"wecom_external_userid":%q}}`, i, i, owner, ext))
	}
	for _, s := range staff {
		fake.AutoConfirm(s, 0)
	}
	fake.FailSender("lina", fakes.SenderFault{HangAfterCreate: true, Times: 1})

	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "canvases"), 0o755))
	cfgPath := filepath.Join(dir, "huabu.yaml")
	// timeout 3s: a create that was under way when the worker died can no
	// longer reach WeCom 14 s later, when the lookup decides.
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
canvases: ./canvases
http: {listen: "127.0.0.1:0"}
profile: {attributes: {name: string}}
channels:
  wecom: {corp_id: ww-corp, agent_id: 1000002, secret: secret, base_url: "%s", timeout: 3s,
          staff_poll_interval: 1s, staff_late_window: 0s, directory_sync_interval: 0s}
`, fake.URL())), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "canvases", "sop.yaml"), []byte(`
id: sop
trigger: {manual: {}}
steps:
  - id: task
    staff_task:
      text: "今日推荐：会员日专属权益"
      deadline: 1h
`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "profiles.jsonl"), []byte(strings.Join(profiles, "\n")), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "staff.jsonl"), []byte(`{"userid":"lina","name":"李娜","grid":"浦东一网格","leader":"chenjing"}
{"userid":"wangfang","name":"王芳","grid":"徐汇二网格","leader":"zhaolei"}
{"userid":"zhangwei","name":"张伟","grid":"浦东一网格","leader":"chenjing"}
`), 0o644))

	dev := startDev(t, dir, cfgPath)
	for _, kind := range []string{"staff", "profiles"} {
		out, errOut, code := huabu(t, "import", kind, filepath.Join(dir, kind+".jsonl"), "-c", cfgPath, "--data", data)
		require.Equal(t, 0, code, out+errOut)
	}
	out, errOut, code := huabu(t, "run", "sop", "-c", cfgPath, "--data", data, "--api", dev.api)
	require.Equal(t, 0, code, out+errOut)
	workflowID := strings.Fields(out)[1]

	// WeCom has lina's task; Huabu is still waiting for the answer.
	require.Eventually(t, func() bool { return len(fake.TasksFor("lina")) == 1 }, 30*time.Second, 5*time.Millisecond, dev.logs)
	dev.kill()

	st, err := store.OpenSQLite(context.Background(), filepath.Join(data, "huabu.db"))
	require.NoError(t, err)
	defer st.Close()
	tasks, err := st.StaffTasks(context.Background(), 1, "task")
	require.NoError(t, err)
	for _, task := range tasks {
		if task.Staff == "lina" {
			require.Equal(t, store.StaffTaskPending, task.State, "killed between creating and recording")
		}
	}

	dev = startDev(t, dir, cfgPath)
	require.Eventually(t, func() bool {
		resp, err := http.Get(dev.api + "/api/v1/runs/" + workflowID)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var s struct{ Status string }
		_ = json.NewDecoder(resp.Body).Decode(&s)
		return s.Status == "Completed"
	}, 45*time.Second, 200*time.Millisecond, "the run did not finish after the restart:\n%s", dev.logs)

	require.Equal(t, map[string]int{"lina": 1, "wangfang": 1, "zhangwei": 1}, fake.CreateCalls(), "add_msg_template calls per staff member")
	tasks, err = st.StaffTasks(context.Background(), 1, "task")
	require.NoError(t, err)
	require.Len(t, tasks, 3)
	for _, task := range tasks {
		wecom := fake.TasksFor(task.Staff)
		require.Len(t, wecom, 1, "%s got a second task", task.Staff)
		require.Equal(t, wecom[0].MsgID, task.Ref, task.Staff)
		require.Equal(t, store.StaffOnTime, task.Result, task.Staff)
	}
	require.Contains(t, dev.logs.String(), "adopted")
}
