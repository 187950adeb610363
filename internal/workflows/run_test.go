package workflows

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/huabu/huabu/examples"
	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/channels/wecom"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/store"
)

// harness is a real store, the example config's compiler and the outbox
// channel set, with the interpreter in Temporal's test environment.
type harness struct {
	t         *testing.T
	store     *store.SQLite
	compiler  *canvases.Compiler
	acts      *activities.Activities
	staffActs *activities.StaffActivities
	env       *testsuite.TestWorkflowEnvironment
	runs      int
	// faults, when set, is installed in every new environment.
	faults *faultInjector
}

func newHarness(t *testing.T) *harness {
	return newHarnessWith(t, "")
}

// newHarnessWith overrides the example config's channels section (YAML).
func newHarnessWith(t *testing.T, channelsYAML string) *harness {
	return newHarnessWithDeps(t, channelsYAML, nil)
}

// newHarnessWithDeps is newHarnessWith with the channels' dependencies
// edited (a clock, say) before they are built.
func newHarnessWithDeps(t *testing.T, channelsYAML string, edit func(*channels.Deps)) *harness {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "huabu.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	src, err := examples.FS.ReadFile("huabu.yaml")
	require.NoError(t, err)
	text := string(src)
	if channelsYAML != "" {
		i := strings.Index(text, "channels:")
		j := strings.Index(text, "policy:")
		text = text[:i] + channelsYAML + "\n" + text[j:]
	}
	cfg, err := config.Parse("huabu.yaml", "", []byte(text))
	require.NoError(t, err)
	comp, err := cfg.Compiler()
	require.NoError(t, err)
	deps := channels.Deps{Outbox: st}
	if edit != nil {
		edit(&deps)
	}
	set, err := channels.NewSet(cfg.Channels, cfg.ChannelProviders(), deps)
	require.NoError(t, err)
	h := &harness{t: t, store: st, compiler: comp}
	h.acts = &activities.Activities{Store: st, Channels: set, Compiler: comp}
	h.staffActs = &activities.StaffActivities{Engine: h.acts, Store: st, Directory: st}
	api, err := wecom.Configured(cfg.Channels, cfg.ChannelProviders(), deps)
	require.NoError(t, err)
	if api != nil {
		h.staffActs.WeCom = api
	}
	return h
}

func (h *harness) newEnv() *testsuite.TestWorkflowEnvironment {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	env := suite.NewTestWorkflowEnvironment()
	opts := worker.Options{}
	if h.faults != nil {
		opts.Interceptors = []interceptor.WorkerInterceptor{h.faults}
	}
	env.SetWorkerOptions(opts)
	env.SetTestTimeout(2 * time.Minute) // in-activity retries back off in real time
	Register(env)
	env.RegisterActivity(h.acts)
	env.RegisterActivity(h.staffActs)
	// Every run is a new workflow, as in production (BeginRun keys on it).
	h.runs++
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: fmt.Sprintf("test-run-%d", h.runs)})
	h.env = env
	return env
}

func (h *harness) deploy(src string) *canvases.Plan {
	h.t.Helper()
	plan, problems := h.compiler.Compile("test.yaml", []byte(src))
	require.False(h.t, problems.HasErrors(), problems.Error())
	_, err := h.store.SavePlan(context.Background(), plan.ID, plan.Hash, plan.JSON(), "test.yaml")
	require.NoError(h.t, err)
	return plan
}

func (h *harness) profiles(n int, traits func(i int) map[string]any) {
	h.t.Helper()
	var ups []store.ProfileUpdate
	for i := 0; i < n; i++ {
		doc := map[string]any{"id": fmt.Sprintf("u%03d", i)}
		for k, v := range traits(i) {
			doc[k] = v
		}
		b, _ := json.Marshal(doc)
		ups = append(ups, store.ProfileUpdate{ID: fmt.Sprintf("u%03d", i), Patch: b})
	}
	_, err := h.store.UpsertProfiles(context.Background(), ups)
	require.NoError(h.t, err)
}

func (h *harness) run(plan *canvases.Plan) RunResult {
	h.t.Helper()
	env := h.newEnv()
	env.ExecuteWorkflow(Run, RunInput{CanvasID: plan.ID, PlanHash: plan.Hash, Trigger: "manual"})
	require.True(h.t, env.IsWorkflowCompleted())
	require.NoError(h.t, env.GetWorkflowError())
	var res RunResult
	require.NoError(h.t, env.GetWorkflowResult(&res))
	return res
}

func (h *harness) outbox(canvas string) []store.OutboxMessage {
	msgs, err := h.store.Outbox(context.Background(), canvas, 100000)
	require.NoError(h.t, err)
	return msgs
}

// counts returns per-step counts; steps nothing reached have zero counts.
func (h *harness) counts(canvas string, run int64) map[string]*store.StepCounts {
	c, _, err := h.store.Counts(context.Background(), canvas, run)
	require.NoError(h.t, err)
	plan, err := h.store.Canvas(context.Background(), canvas)
	require.NoError(h.t, err)
	p, err := canvases.UnmarshalPlan(plan.Plan)
	require.NoError(h.t, err)
	for _, s := range p.Steps {
		if c[s.ID] == nil {
			c[s.ID] = &store.StepCounts{StepID: s.ID}
		}
	}
	return c
}

func TestPushWaitBranchSplitTagExit(t *testing.T) {
	h := newHarness(t)
	h.profiles(200, func(i int) map[string]any {
		return map[string]any{"name": fmt.Sprintf("用户%d", i), "phone": fmt.Sprintf("1380000%04d", i), "city": []string{"上海", "北京"}[i%2], "push_alias": fmt.Sprintf("a%d", i)}
	})
	plan := h.deploy(`
id: flow
trigger: {manual: {}}
audience: 'user.city == "上海"'
steps:
  - id: hello
    push: {channel: push, title: 你好, text: "{{ .user.name }}，欢迎"}
  - id: pause
    wait: 3d
  - id: check
    branch:
      - {when: 'user.phone endsWith "0"', goto: tag-zero}
      - {else: ab}
  - id: tag-zero
    tag: {add: [zero]}
    next: done
  - id: ab
    split: [{weight: 50, goto: sms-a}, {weight: 50, goto: sms-b}]
  - id: sms-a
    push: {channel: sms, template: SMS_A, params: {name: "{{ .user.name }}"}}
    next: done
  - id: sms-b
    push: {channel: sms, template: SMS_B}
  - id: done
    exit: {}
`)
	res := h.run(plan)
	require.Equal(t, int64(100), res.Stats.Entered)
	require.Equal(t, int64(100+80), res.Stats.Sent, "everyone gets hello; the 80 not ending in 0 get one of the SMS")
	require.Equal(t, int64(100), res.Stats.Exited)

	c := h.counts("flow", res.RunID)
	require.Equal(t, int64(100), c["hello"].Entered)
	require.Equal(t, int64(100), c["hello"].Sent)
	require.Equal(t, int64(20), c["tag-zero"].Entered)
	require.Equal(t, int64(80), c["ab"].Entered)
	require.Equal(t, c["sms-a"].Entered+c["sms-b"].Entered, int64(80))
	require.InDelta(t, 40, c["sms-a"].Entered, 15, "a 50/50 split")
	require.Equal(t, int64(100), c["done"].Exited)

	msgs := h.outbox("flow")
	require.Len(t, msgs, 180)
	var m canvases.Message
	for _, msg := range msgs {
		if msg.StepID == "hello" && msg.UserID == "u000" {
			require.NoError(t, json.Unmarshal(msg.Message, &m))
			require.Equal(t, "用户0，欢迎", m.Text)
			require.Equal(t, "push", msg.Channel)
			require.Equal(t, "a0", msg.Address)
		}
	}
	p, err := h.store.ProfileByID(context.Background(), "u010")
	require.NoError(t, err)
	require.Contains(t, string(p.Doc), `"zero"`)
	_ = time.Second
}
