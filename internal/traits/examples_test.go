package traits

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/huabu/huabu/examples"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/ingest"
)

// TestExampleConfig runs the example config's traits, RFM and auto-tags
// over the example profiles plus synthetic purchases, loaded the way
// `huabu import profiles` and `huabu import events` load them, and checks
// the win-back canvas's audience picks the users it is meant for.
func TestExampleConfig(t *testing.T) {
	src, err := examples.FS.ReadFile("huabu.yaml")
	require.NoError(t, err)
	e := newEnv(t, string(src))
	require.NotEmpty(t, e.cfg.Profile.Traits)
	require.NotNil(t, e.cfg.Profile.RFM)
	require.Contains(t, e.cfg.Tags, "dormant")
	require.Contains(t, e.cfg.Tags, "high_value")
	require.NoError(t, e.eng.Sync(e.ctx))

	schema, err := e.cfg.Schema()
	require.NoError(t, err)
	profiles, err := examples.FS.ReadFile("profiles.jsonl")
	require.NoError(t, err)
	sum, err := ingest.ImportProfiles(e.ctx, e.st, schema, bytes.NewReader(profiles), ingest.Options{})
	require.NoError(t, err)
	require.Empty(t, sum.Rejected)
	require.Equal(t, 40, sum.Imported)

	// u001..u030 each bought once, 5·i days ago, for 100·i: the longer ago,
	// the more they spent. u031 opens the app.
	var lines []string
	for i := 1; i <= 30; i++ {
		lines = append(lines, fmt.Sprintf(`{"userId":"u%03d","event":"purchase","properties":{"amount":%d,"order_id":"o%d","sku":"S%d"},"timestamp":%q}`,
			i, 100*i, i, i, t0.Add(-time.Duration(5*i)*day).Format(time.RFC3339Nano)))
	}
	for d := 1; d <= 3; d++ {
		lines = append(lines, fmt.Sprintf(`{"userId":"u031","event":"app_open","timestamp":%q}`, t0.Add(-time.Duration(d)*day).Format(time.RFC3339)))
	}
	esum, err := ingest.ImportEvents(e.ctx, e.st, ingest.NewValidator(schema), strings.NewReader(strings.Join(lines, "\n")), ingest.Options{})
	require.NoError(t, err)
	require.Empty(t, esum.Rejected)
	require.Equal(t, 33, esum.Imported)

	require.Equal(t, 40, e.refresh(), "every imported profile is computed")
	e.rfm()

	tr := e.traits("u002")
	require.Equal(t, map[string]any{"orders_30d": 1.0, "spend_90d": 200.0, "last_order_amount": 200.0, "days_since_last_order": 10.0, "app_opens_7d": 0.0}, tr)
	require.Equal(t, 3.0, e.traits("u031")["app_opens_7d"])
	require.Equal(t, 0.0, e.traits("u006")["orders_30d"], "30 days ago is outside a 30d window")
	require.Equal(t, 0.0, e.traits("u019")["spend_90d"])
	require.Equal(t, "黄芳", e.doc("u002")["name"], "attributes are kept")

	// 30 purchasers with distinct recency and spend: 6 per score.
	for i := 1; i <= 30; i++ {
		want := float64((i-1)/6 + 1)
		require.Equal(t, map[string]any{"r": 6 - want, "f": 1.0, "m": want}, e.scores(fmt.Sprintf("u%03d", i)), i)
	}
	require.Nil(t, e.scores("u031"))

	// Auto-tags: dormant after 60 days without an order, high_value by RFM;
	// the tags profiles came with stay.
	tagged := func(tag string) []string {
		var out []string
		for i := 1; i <= 40; i++ {
			u := fmt.Sprintf("u%03d", i)
			if slices.Contains(e.tags(u), tag) {
				out = append(out, u)
			}
		}
		return out
	}
	require.Equal(t, users(13, 30), tagged("dormant"), "5·i > 60")
	require.Equal(t, users(19, 30), tagged("high_value"))
	require.Equal(t, []string{"母婴", "勿扰"}, e.tags("u001"))
	require.Equal(t, []string{"vip", "母婴", "dormant", "high_value"}, e.tags("u022"))

	// The win-back canvas's audience: low R, high M, not vip.
	canvas, err := examples.FS.ReadFile("canvases/winback-dormant.yaml")
	require.NoError(t, err)
	var c struct{ Audience string }
	require.NoError(t, yaml.Unmarshal(canvas, &c))
	comp, err := e.cfg.Compiler()
	require.NoError(t, err)
	audience, err := comp.CompileCondition(c.Audience, "")
	require.NoError(t, err)
	in := func() []string {
		var out []string
		for i := 1; i <= 40; i++ {
			u := fmt.Sprintf("u%03d", i)
			ok, err := audience.Eval(e.doc(u), nil)
			require.NoError(t, err)
			if ok {
				out = append(out, u)
			}
		}
		return out
	}
	require.Equal(t, []string{"u019", "u020", "u021", "u025", "u026", "u027", "u028", "u029", "u030"}, in())

	// Ten days pass with no event: windows slide, more users go dormant.
	e.clk.Advance(10 * day)
	e.refresh()
	require.Equal(t, users(11, 30), tagged("dormant"), "5·i + 10 > 60")
	require.Equal(t, 1.0, e.traits("u003")["orders_30d"])
	require.Equal(t, 0.0, e.traits("u004")["orders_30d"])
	require.Equal(t, 0.0, e.traits("u031")["app_opens_7d"])

	// A dormant high spender buys again: no longer dormant, and out of the
	// win-back audience once the quintiles are recomputed.
	e.track(purchase("u030", 50, e.clk.Now()))
	e.refresh()
	require.NotContains(t, e.tags("u030"), "dormant")
	e.rfm()
	require.Equal(t, 5.0, e.scores("u030")["r"])
	require.NotContains(t, in(), "u030")

	// Every example canvas still compiles against the config.
	files, problems, err := comp.CompileAll(canvases.FS{FS: examples.FS}, []string{"canvases"})
	require.NoError(t, err)
	require.Empty(t, problems, problems.Error())
	require.NotEmpty(t, files)
}

func users(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("u%03d", i))
	}
	return out
}
