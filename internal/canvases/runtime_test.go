package canvases

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestConditionEval(t *testing.T) {
	c := testCompiler(t)
	user := map[string]any{
		"id": "u1", "name": "张三", "city": "上海", "balance": 120.5, "birthday": "1990-05-01",
		"tags": []any{"vip", "宝妈"}, "traits": map[string]any{"orders_30d": float64(2)},
		"rfm": map[string]any{"r": float64(1), "f": float64(5), "m": float64(4)},
	}
	for src, want := range map[string]bool{
		`user.rfm.r <= 2 && user.rfm.m >= 4`:      true,
		`"vip" in user.tags`:                      true,
		`!("vip" in user.tags)`:                   false,
		`user.traits.orders_30d > 1`:              true,
		`user.traits.spend_90d > 0`:               false, // missing traits are zero
		`user.balance > 100 && user.city == "上海"`: true,
		`month(user.birthday) == 5`:               true,
		`int(user.birthday.Month()) == 5`:         true,
		`user.phone == ""`:                        true, // reserved attribute, absent
	} {
		cond, err := c.CompileCondition(src, "")
		require.NoError(t, err, src)
		got, err := cond.Eval(user, nil)
		require.NoError(t, err, src)
		require.Equal(t, want, got, src)
	}

	ev, err := c.CompileCondition(`event.amount >= 500 && user.city == "上海"`, "purchase")
	require.NoError(t, err)
	got, err := ev.Eval(user, map[string]any{"amount": float64(599)})
	require.NoError(t, err)
	require.True(t, got)

	open, err := c.CompileCondition(`event.coupon == "C1"`, "coupon_used") // undeclared event: open properties
	require.NoError(t, err)
	got, err = open.Eval(user, map[string]any{"coupon": "C1"})
	require.NoError(t, err)
	require.True(t, got)

	_, err = c.CompileCondition(`user.nmae == "x"`, "")
	require.ErrorContains(t, err, `user has no field "nmae"`)
}

func TestTemplateRender(t *testing.T) {
	c := testCompiler(t)
	tmpl, err := ParseTemplate(`{{ .user.name | default "顾客" }}，{{ .owner.name }}为您服务，手机 {{ .user.phone | mask }}`)
	require.NoError(t, err)
	data := map[string]any{
		"user":  c.Env().Normalize("user", map[string]any{"phone": "13800138000"}),
		"owner": c.Env().Normalize("owner", map[string]any{"name": "李娜"}),
	}
	var b bytes.Buffer
	require.NoError(t, tmpl.Execute(&b, data))
	require.Equal(t, "顾客，李娜为您服务，手机 138****8000", b.String())
}

// An evaluator reused user after user decides as Eval does for each alone:
// nothing of one user is left for the next who lacks the value.
func TestConditionEvaluatorMatchesEval(t *testing.T) {
	c := testCompiler(t)
	users := []map[string]any{
		{"city": "上海", "tags": []any{"vip"}, "balance": 120.5, "rfm": map[string]any{"r": float64(1)}},
		{},
		{"city": "北京", "traits": map[string]any{"orders_30d": float64(3)}},
		nil,
		{"tags": []any{"退订"}, "balance": 99.0, "birthday": "1990-05-01"},
		{"city": "上海", "balance": "not a number"},
	}
	for _, src := range []string{
		`user.city == "上海"`,
		`user.city != "" && !("退订" in user.tags)`,
		`"vip" in user.tags || user.rfm.r == 1`,
		`user.traits.orders_30d > 1`,
		`user.balance > 100`,
		`month(user.birthday) == 5`,
		`user.balance / 0 > 1 || user.city == ""`,
	} {
		cond, err := c.CompileCondition(src, "")
		require.NoError(t, err, src)
		ev := cond.Evaluator()
		for i, u := range users {
			want, wantErr := cond.Eval(u, nil)
			got, err := ev.Eval(u, nil)
			require.Equal(t, wantErr != nil, err != nil, "%s, user %d: %v / %v", src, i, wantErr, err)
			require.Equal(t, want, got, "%s, user %d", src, i)
		}
	}
}
