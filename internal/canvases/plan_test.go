package canvases

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const hashBase = `
id: hash
name: 哈希
trigger: {schedule: {cron: "0 10 * * MON"}}
audience: 'user.rfm.r <= 2'
steps:
  - id: coupon
    push: {channel: wecom.customer, text: "回归礼包已到账"}
  - id: wait
    wait: 72h
  - id: ab
    split: [{weight: 50, goto: a}, {weight: 50, goto: b}]
  - id: a
    push: {channel: sms, template: SMS_A}
    next: done
  - id: b
    push: {channel: sms, template: SMS_B}
  - id: done
    exit: {}
`

func mustCompile(t *testing.T, c *Compiler, src string) *Plan {
	t.Helper()
	p, problems := c.Compile("hash.yaml", []byte(src))
	require.False(t, problems.HasErrors(), problems.Error())
	require.NotNil(t, p)
	return p
}

func TestHashStable(t *testing.T) {
	c := testCompiler(t)
	base := mustCompile(t, c, hashBase)
	require.Len(t, base.Hash, 64)
	require.Equal(t, base.Hash, mustCompile(t, c, hashBase).Hash, "same canvas, same hash")
	require.Equal(t, base.Hash, base.ComputeHash())

	same := map[string]string{
		"comments and blank lines": "# a comment\n" + strings.ReplaceAll(hashBase, "steps:", "\nsteps:   # the steps"),
		"3d instead of 72h":        strings.Replace(hashBase, "wait: 72h", "wait: 3d", 1),
		"wait as an object":        strings.Replace(hashBase, "wait: 72h", "wait: {duration: 3d}", 1),
		"key order":                strings.Replace(hashBase, `{channel: wecom.customer, text: "回归礼包已到账"}`, `{text: "回归礼包已到账", channel: wecom.customer}`, 1),
		"explicit defaults":        strings.Replace(hashBase, `{cron: "0 10 * * MON"}`, `{cron: "0 10 * * MON", timezone: Asia/Shanghai}`, 1),
		"explicit variant names":   strings.Replace(hashBase, `[{weight: 50, goto: a}, {weight: 50, goto: b}]`, `[{weight: 50, goto: a, name: A}, {weight: 50, goto: b, name: B}]`, 1),
		"block style": strings.Replace(hashBase, `    split: [{weight: 50, goto: a}, {weight: 50, goto: b}]`,
			"    split:\n      - weight: 50\n        goto: a\n      - weight: 50\n        goto: b", 1),
	}
	for name, src := range same {
		require.Equal(t, base.Hash, mustCompile(t, c, src).Hash, name)
	}
	different := map[string]string{
		"message text":  strings.Replace(hashBase, "回归礼包已到账", "回归礼包到账啦", 1),
		"wait length":   strings.Replace(hashBase, "wait: 72h", "wait: 4d", 1),
		"split weights": strings.Replace(hashBase, `[{weight: 50, goto: a}, {weight: 50, goto: b}]`, `[{weight: 60, goto: a}, {weight: 40, goto: b}]`, 1),
		"audience":      strings.Replace(hashBase, "user.rfm.r <= 2", "user.rfm.r <= 3", 1),
		"cron":          strings.Replace(hashBase, "0 10 * * MON", "0 11 * * MON", 1),
		"timezone":      strings.Replace(hashBase, `{cron: "0 10 * * MON"}`, `{cron: "0 10 * * MON", timezone: Asia/Tokyo}`, 1),
		"added step":    strings.Replace(hashBase, "  - id: done\n", "  - id: b2\n    tag: {add: [x]}\n  - id: done\n", 1),
		"next target":   strings.Replace(hashBase, "  - id: b\n    push: {channel: sms, template: SMS_B}\n", "  - id: b\n    push: {channel: sms, template: SMS_B}\n    next: done\n", 1),
		"reentry":       strings.Replace(hashBase, "audience:", "entry: {reentry: never}\naudience:", 1),
	}
	seen := map[string]string{base.Hash: "base"}
	for name, src := range different {
		h := mustCompile(t, c, src).Hash
		if name == "next target" {
			require.Equal(t, base.Hash, h, "b already flowed to done")
			continue
		}
		require.NotContains(t, seen, h, "%s hashes like %s", name, seen[h])
		seen[h] = name
	}
}

func TestPlanJSONRoundTrip(t *testing.T) {
	p := mustCompile(t, testCompiler(t), hashBase)
	back, err := UnmarshalPlan(p.JSON())
	require.NoError(t, err)
	require.Equal(t, p.Hash, back.Hash)
	require.Equal(t, p.JSON(), back.JSON())
	require.Equal(t, "done", back.Step("a").Next)
	require.Equal(t, "ab", back.Step("wait").Next)

	tampered := strings.Replace(string(p.JSON()), "SMS_A", "SMS_X", 1)
	_, err = UnmarshalPlan([]byte(tampered))
	require.ErrorContains(t, err, "does not match its hash")
}

func TestPlanDefaults(t *testing.T) {
	c := testCompiler(t)
	p := mustCompile(t, c, hashBase)
	require.Equal(t, "Asia/Shanghai", p.Trigger.Schedule.Timezone)
	require.Equal(t, Entry{Reentry: ReentryAlways}, p.Entry, "scheduled broadcasts re-enter by default")
	require.Equal(t, "user", p.Step("coupon").Push.To)
	require.Equal(t, []SplitArm{{Weight: 50, Goto: "a", Name: "A"}, {Weight: 50, Goto: "b", Name: "B"}}, p.Step("ab").Split)
	require.Equal(t, "", p.Step("done").Next)
	require.Equal(t, "done", p.Step("b").Next, "the step after b in the list")

	ev := mustCompile(t, c, "id: e\ntrigger: {event: {name: purchase}}\nsteps: [{id: x, exit: {}}]\n")
	require.Equal(t, Entry{Reentry: ReentryNever}, ev.Entry, "event journeys run once per person by default")
}

// TestWhilePaused: an event trigger keeps entries while paused unless it
// says drop; keep written out is the same plan (same hash) as left out.
func TestWhilePaused(t *testing.T) {
	c := testCompiler(t)
	src := func(extra string) []byte {
		return []byte("id: wp\ntrigger:\n  event: {name: purchase" + extra + "}\nsteps:\n  - id: done\n    exit: {}\n")
	}
	for _, tc := range []struct {
		extra string
		drop  bool
	}{
		{"", false},
		{", while_paused: keep", false},
		{", while_paused: drop", true},
	} {
		p, problems := c.Compile("wp.yaml", src(tc.extra))
		require.False(t, problems.HasErrors(), problems.Error())
		require.Equal(t, tc.drop, p.DropsEntriesWhilePaused(), tc.extra)
	}
	keep, _ := c.Compile("wp.yaml", src(", while_paused: keep"))
	none, _ := c.Compile("wp.yaml", src(""))
	require.Equal(t, none.Hash, keep.Hash)
}
