package config

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
)

func TestDefaultsAndEnv(t *testing.T) {
	t.Setenv("HUABU_TEST_SECRET", "s3cr#t: x")
	t.Setenv("HUABU_EMPTY", "")
	cfg, err := Parse("huabu.yaml", "/etc/huabu", []byte(`
http:
  write_keys: ["${HUABU_EMPTY}", "${HUABU_MISSING:-fallback}"]
channels:
  wecom: {corp_id: ww1, secret: "${HUABU_TEST_SECRET}", agent_id: 1000002}
  sms: {provider: aliyun, sign_name: "${HUABU_MISSING}"}
`))
	require.NoError(t, err)
	require.Equal(t, "Asia/Shanghai", cfg.Timezone)
	require.True(t, cfg.Temporal.Embedded())
	require.Equal(t, "huabu", cfg.Temporal.TaskQueue)
	require.Equal(t, "127.0.0.1:8080", cfg.HTTP.Listen)
	require.Equal(t, []string{"fallback"}, cfg.HTTP.WriteKeys, "an unset key is dropped, not an empty key that matches nothing")
	require.Equal(t, "s3cr#t: x", cfg.Channels["wecom"]["secret"], "expansion happens after YAML parsing, so any character is safe")
	require.Equal(t, "", cfg.Channels["sms"]["sign_name"])
	require.Equal(t, "/etc/huabu/canvases", cfg.Path(cfg.Canvases))
	require.Equal(t, map[string]string{
		"outbox": "outbox", "wecom.app": "wecom", "wecom.customer": "wecom", "wecom.group": "wecom", "sms": "aliyun",
	}, cfg.ChannelProviders())
	n, ok := Int(cfg.Channels["wecom"], "agent_id")
	require.True(t, ok)
	require.Equal(t, 1000002, n)
}

func TestSchema(t *testing.T) {
	cfg, err := Parse("huabu.yaml", "", []byte(`
profile:
  attributes: {name: string, balance: number}
  traits:
    orders_30d: {count: purchase, within: 30d}
    spend_90d: {sum: purchase.amount, within: 90d}
    last_sku: {last: purchase.sku}
    top_amount: {max: purchase.amount}
    days_since_order: {days_since: purchase}
  rfm: {event: purchase, amount: amount}
events:
  purchase: {amount: number, sku: string}
tags:
  dormant: 'user.traits.days_since_order > 60'
`))
	require.NoError(t, err)
	s, err := cfg.Schema()
	require.NoError(t, err)
	require.Equal(t, map[string]canvases.FieldType{
		"orders_30d": canvases.TypeInteger, "spend_90d": canvases.TypeNumber, "last_sku": canvases.TypeString,
		"top_amount": canvases.TypeNumber, "days_since_order": canvases.TypeInteger,
	}, s.Traits)
	require.True(t, s.RFM)
	require.Equal(t, "365d", cfg.Profile.RFM.Window)

	cfg, err = Parse("huabu.yaml", "", []byte(`profile: {rfm: {event: purchase, amount: purchase.amount, window: 180d}}`))
	require.NoError(t, err)
	require.Equal(t, RFMConfig{Event: "purchase", Amount: "amount", Window: "180d"}, *cfg.Profile.RFM, "event.amount means the amount property")
}

func TestErrors(t *testing.T) {
	for src, want := range map[string]string{
		"timezone: Mars/Base":                                    `timezone: unknown time zone "Mars/Base"`,
		"store: {driver: mysql}":                                 `store.driver: "mysql" is not sqlite or postgres`,
		"htpp: {listen: x}":                                      `huabu.yaml:1:1: error: htpp: unknown key (did you mean "http"?)`,
		"profile: {attributes: {name: text}}":                    `profile.attributes.name: unknown type "text"`,
		"profile: {attributes: {phone: number}}":                 `reserved attribute "phone" is a string`,
		"profile: {traits: {x: {within: 3d}}}":                   `profile.traits.x: say what it computes`,
		"profile: {traits: {x: {sum: purchase}}}":                `sum takes event.property`,
		"profile: {traits: {x: {count: a, sum: a.b}}}":           `use one of count`,
		"profile: {traits: {x: {count: a, within: 3 days}}}":     `profile.traits.x.within: invalid duration`,
		"channels: {wechat: {}}":                                 `channels.wechat: unknown channel section`,
		"channels: {sms: {provider: twilio}}":                    `channels.sms.provider: "twilio" is not one of aliyun, tencent, outbox`,
		"channels: {push: {provider: fcm}}":                      `channels.push.provider: "fcm" is not one of jpush, apns, outbox`,
		"channels: {wecom: {provider: wechat}}":                  `channels.wecom.provider: "wechat" is not one of wecom, outbox`,
		"tags: {dormant: 'user.nope > 1'}":                       `tags.dormant: user has no field "nope"`,
		"policy: {frequency: [{channel: sms, max: 0, per: 1d}]}": `policy.frequency[0].max: must be at least 1`,
		"profile: {rfm: {event: purchase}}":                      `profile.rfm: event and amount are required`,
		"profile: {traits: {x: {count: a, within: 0d}}}":         `profile.traits.x.within: a window must be longer than 0`,
		"profile: {traits: {x: {count: a.b}}}":                   `count takes an event name, got "a.b"`,
		"profile: {traits: {x: {max: .b}}}":                      `max takes event.property, got ".b"`,
		"profile: {traits: {Orders: {count: a}}}":                `profile.traits.Orders: names must be lowercase`,
		"profile: {rfm: {event: p, amount: a, window: 0h}}":      `profile.rfm.window: the window must be longer than 0`,
		"profile: {rfm: {event: p, amount: a, window: 1y}}":      `profile.rfm.window: invalid duration`,
	} {
		_, err := Parse("huabu.yaml", "", []byte(src))
		require.ErrorContains(t, err, want, src)
		require.Regexp(t, `^huabu.yaml:\d+:\d+: error: `, err.Error(), "errors name the file, line and column")
		var problems canvases.Problems
		require.ErrorAs(t, err, &problems, "the CLI prints each problem on its own line")
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "huabu.yaml")
	require.NoError(t, os.WriteFile(path, []byte("canvases: ./flows\n"), 0o644))
	cfg, err := Load(path)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "flows"), cfg.Path(cfg.Canvases))
	_, err = Load(filepath.Join(dir, "missing.yaml"))
	require.Error(t, err)
	empty := filepath.Join(dir, "empty.yaml")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	_, err = Load(empty)
	require.NoError(t, err, "an empty config means all defaults")
}

func TestIngestBacklog(t *testing.T) {
	cfg, err := Parse("huabu.yaml", t.TempDir(), []byte("http: {listen: '127.0.0.1:0'}\n"))
	require.NoError(t, err)
	require.Equal(t, 1024, cfg.HTTP.IngestBacklogMB, "1 GiB unless set")
	_, err = Parse("huabu.yaml", t.TempDir(), []byte("http: {ingest_backlog_mb: -1}\n"))
	require.ErrorContains(t, err, "http.ingest_backlog_mb")
}

var update = flag.Bool("update", false, "rewrite golden files")

// TestProblemsGolden checks every config in testdata/errors against its
// .golden file: all of its problems, FILE:LINE:COL: severity: path: message.
func TestProblemsGolden(t *testing.T) {
	t.Setenv("HUABU_TEST_BACKLOG", "lots")
	files, err := filepath.Glob("testdata/errors/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			cfg, err := Load(f)
			require.Nil(t, cfg, "a config with errors is not used")
			var problems canvases.Problems
			require.ErrorAs(t, err, &problems)
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			got := problems.Error() + "\n"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
				return
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "missing golden file; run go test ./internal/config -update")
			require.Equal(t, string(want), got, "stale golden file %s; run go test ./internal/config -update and review the diff", golden)
		})
	}
}

// TestSpecMatchesStruct keeps the key spec and the Config struct one thing:
// every yaml key of the struct is a field of the spec, recursively.
func TestSpecMatchesStruct(t *testing.T) {
	var visit func(rt reflect.Type, spec *canvases.Type, path string)
	visit = func(rt reflect.Type, spec *canvases.Type, path string) {
		for rt.Kind() == reflect.Pointer || rt.Kind() == reflect.Map || rt.Kind() == reflect.Slice {
			rt = rt.Elem()
			if spec.Kind == canvases.KindMap || spec.Kind == canvases.KindList {
				spec = spec.Elem
			}
		}
		if rt.Kind() != reflect.Struct {
			return
		}
		require.Equal(t, canvases.KindObject, spec.Kind, path)
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if key == "" || key == "-" {
				continue
			}
			sf := spec.Field(key)
			require.NotNil(t, sf, "%s.%s is in the struct but not in the spec", path, key)
			visit(f.Type, sf.Type, path+"."+key)
		}
	}
	visit(reflect.TypeOf(Config{}), Spec, "config")
	// The examples parse without a problem.
	for _, f := range []string{"../../examples/huabu.yaml", "../../examples/huabu-fakes.yaml", "../../examples/huabu-wecom-fake.yaml"} {
		_, err := Load(f)
		require.NoError(t, err, f)
	}
}

// TestTemplateCodeOnlyFromProviderSpecs: whether an SMS step must give a
// template code follows the configured provider's spec
// (channels.Spec.TemplateCodeOnly), not a list in the language.
func TestTemplateCodeOnlyFromProviderSpecs(t *testing.T) {
	const canvas = `id: c
trigger: {manual: {}}
audience: 'true'
steps:
  - id: hello
    push: {channel: sms, text: 您好}
`
	for _, tc := range []struct {
		provider string
		needs    bool
	}{
		{"aliyun", true},
		{"tencent", true},
		{"outbox", false},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			cfg, err := Parse("huabu.yaml", "", []byte("channels: {sms: {provider: "+tc.provider+"}}\n"))
			require.NoError(t, err)
			opts, err := cfg.CompilerOptions()
			require.NoError(t, err)
			require.Equal(t, tc.needs, opts.TemplateCodeOnly["sms"])
			comp, err := cfg.Compiler()
			require.NoError(t, err)
			_, problems := comp.Compile("c.yaml", []byte(canvas))
			if tc.needs {
				require.True(t, problems.HasErrors())
				require.Contains(t, problems.Error(), "sms sends provider-approved templates only (provider "+tc.provider+")")
			} else {
				require.False(t, problems.HasErrors(), problems.Error())
			}
		})
	}
}
