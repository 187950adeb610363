package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/config"
)

// TestExampleConfigs: every examples/*.yaml is a valid config whose channels
// all build, and the example canvases validate under it.
func TestExampleConfigs(t *testing.T) {
	chdirRepoRoot(t)
	files, err := filepath.Glob("examples/*.yaml")
	require.NoError(t, err)
	require.Contains(t, files, "examples/huabu-fakes.yaml")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			cfg, err := config.Load(file)
			require.NoError(t, err)
			_, err = channels.NewSet(cfg.Channels, cfg.ChannelProviders(), testDeps())
			require.NoError(t, err)
			out, errOut, code := huabu(t, "validate", "-c", file)
			require.Equal(t, 0, code, out+errOut)
			require.Empty(t, out)
		})
	}
	cfg, err := config.Load("examples/huabu-fakes.yaml")
	require.NoError(t, err)
	for section, provider := range map[string]string{"wecom": "wecom", "sms": "aliyun", "push": "jpush", "webhook": "webhook"} {
		require.Equal(t, provider, cfg.Provider(section), "examples/huabu-fakes.yaml sends %s through a fake", section)
	}
}

// discardOutbox is an outbox that keeps nothing.
type discardOutbox struct{}

func (discardOutbox) WriteOutbox(context.Context, []channels.OutboxRecord) error { return nil }

func testDeps() channels.Deps {
	return channels.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Outbox: discardOutbox{}}
}

// fakeProcess is `huabu fake KIND` running as a child process.
type fakeProcess struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	config string // the channels snippet it printed
}

var fakeConfigRE = regexp.MustCompile(`(?m)^  channels:\n    (.+)$`)

func startFake(t *testing.T, args ...string) *fakeProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"fake"}, args...)...)
	cmd.Env = append(os.Environ(), "HUABU_AS_CLI=1")
	p := &fakeProcess{cmd: cmd, out: &syncBuffer{}}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	require.Eventually(t, func() bool {
		m := fakeConfigRE.FindStringSubmatch(p.out.String())
		if m != nil {
			p.config = m[1]
		}
		return m != nil
	}, 30*time.Second, 20*time.Millisecond, "huabu fake printed no config:\n%s", p.out)
	return p
}

// stop interrupts the fake as Ctrl-C does and returns all it printed.
func (p *fakeProcess) stop(t *testing.T) string {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
	require.NoError(t, p.cmd.Wait())
	return p.out.String()
}

// channel builds the production channel from the snippet the fake printed.
func (p *fakeProcess) channel(t *testing.T, name string) channels.Channel {
	t.Helper()
	cfg, err := config.Parse("(printed by huabu fake)", "", []byte("channels:\n  "+p.config+"\n"))
	require.NoError(t, err, p.config)
	set, err := channels.NewSet(cfg.Channels, cfg.ChannelProviders(), testDeps())
	require.NoError(t, err)
	ch, ok := set.Get(name)
	require.True(t, ok)
	return ch
}

func users(addrs ...string) []channels.Delivery {
	var ds []channels.Delivery
	for i, a := range addrs {
		name := fmt.Sprintf("顾客%d", i+1)
		ds = append(ds, channels.Delivery{
			Recipient: channels.Recipient{UserID: fmt.Sprintf("u%03d", i+1), Address: a},
			Message:   &canvases.Message{Text: name + "，您好", Template: "SMS_TRIAL_REMINDER", Params: map[string]string{"name": name}},
		})
	}
	return ds
}

// TestFakeCommands runs each `huabu fake` standalone, sends to it through
// the real channel configured from what it printed, and checks the
// recipients --fail names fail with the provider's code and Huabu's reason,
// that every call is printed, and the counts printed on exit.
func TestFakeCommands(t *testing.T) {
	cases := []struct {
		kind, channel string
		args          []string
		addrs         []string
		want          []string // status or reason per delivery
		lines         []string // in the fake's output
	}{
		{
			kind: "aliyun", channel: "sms",
			args:  []string{"--fail", "13800130002=refused,+8613800130003"},
			addrs: []string{"13800130001", "13800130002", "13800130003"},
			want:  []string{"sent", "unsubscribed", "invalid_address"},
			lines: []string{"aliyun SendBatchSms SMS_TRIAL_REMINDER 13800130001,13800130002,13800130003 → isv.CUSTOMER_REFUSED",
				`13800130003 {"name":"顾客3"} → isv.MOBILE_NUMBER_ILLEGAL 非法手机号`, "OK BizId",
				"aliyun fake: ", "delivered 1 messages to 1 numbers", "answers: isv.CUSTOMER_REFUSED"},
		},
		{
			kind: "tencent", channel: "sms",
			args:  []string{"--fail", "13800130002,13800130003=invalid"},
			addrs: []string{"13800130001", "13800130002", "13800130003"},
			want:  []string{"sent", "unsubscribed", "invalid_address"}, // Huabu reads the blacklist code as an opt-out
			lines: []string{"tencent SendSms SMS_TRIAL_REMINDER", "+8613800130002 FailedOperation.PhoneNumberInBlacklist",
				"tencent fake: ", "delivered 1 messages to 1 numbers", "FailedOperation.PhoneNumberInBlacklist 1", "InvalidParameterValue.IncorrectPhoneNumber 1", "Ok 1"},
		},
		{
			kind: "jpush", channel: "push",
			args:  []string{"--fail", "u002"},
			addrs: []string{"u001", "u002"},
			want:  []string{"sent", "no_device"},
			lines: []string{`jpush POST /v3/push alias u002 "顾客2，您好" → 400 error 1011`, "jpush GET /v3/push/cid?count=", "delivered 1 messages to 1 aliases", "answers: 1011 1, 200 1"},
		},
		{
			kind: "webhook", channel: "webhook",
			args:  []string{"--fail", "u002=410"},
			addrs: []string{"", ""},
			want:  []string{"sent", "rejected"},
			lines: []string{"webhook ", " user u002 → 410 refused", " user u001 → 204", "delivered 1 messages to 1 users", "answers: 204 1, 410 1"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			p := startFake(t, append([]string{tc.kind, "--listen", "127.0.0.1:0"}, tc.args...)...)
			ch := p.channel(t, tc.channel)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			outs, err := ch.Send(ctx, channels.Batch{Key: "trial/" + tc.kind, CanvasID: "trial-expiry", RunID: "1", StepID: "reminder", Deliveries: users(tc.addrs...)})
			require.NoError(t, err)
			var got []string
			for _, o := range outs {
				if o.Status == channels.Sent {
					got = append(got, "sent")
				} else {
					require.Equal(t, channels.Permanent, o.Class, "%+v", o)
					got = append(got, o.Reason)
				}
			}
			require.Equal(t, tc.want, got)
			out := p.stop(t)
			for _, l := range tc.lines {
				require.Contains(t, out, l)
			}
		})
	}
}

func TestFakeCommandErrors(t *testing.T) {
	for _, args := range [][]string{
		{"fake", "apns"},
		{"fake", "aliyun", "--fail-rate", "2"},
		{"fake", "aliyun", "--fail-rate", "0.1", "--faults", "gremlins"},
		{"fake", "aliyun", "--fail", "13800130001=blacklisted"},
		{"fake", "webhook", "--fail", "u001=200"},
	} {
		_, errOut, code := huabu(t, args...)
		require.Equal(t, exitUser, code, "%v: %s", args, errOut)
		require.True(t, strings.HasPrefix(errOut, "huabu: "), errOut)
	}
}
