package canvases

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPrintedFields(t *testing.T) {
	for _, tc := range []struct {
		text string
		want []string
	}{
		{`您好`, nil},
		{`{{ .user.name }}，您好`, []string{"user.name"}},
		{`{{ .owner.name | default "您的顾问" }}`, nil},
		{`{{ .owner.name | upper | default "x" }}`, nil},
		{`{{ default "x" .owner.name }}`, nil},
		{`{{ default .user.nick .user.name }}`, []string{"user.nick"}},
		{`{{ .user.name | upper }}`, []string{"user.name"}},
		{`{{ if .user.name }}{{ .user.name }}，{{ end }}您好`, nil},
		{`{{ if .user.name }}hi{{ else }}{{ .user.name }}{{ end }}`, []string{"user.name"}},
		{`{{ if and .user.name .user.city }}{{ .user.name }} {{ .user.city }}{{ end }}`, nil},
		{`{{ if .user.city }}{{ .user.name }}{{ end }}`, []string{"user.name"}},
		{`{{ with .owner.name }}{{ . }}{{ end }}`, nil},
		{`{{ with .owner }}{{ .name }}{{ end }}`, []string{"owner.name"}},
		{`{{ range .user.tags }}{{ . }}{{ end }}`, nil},
		{`{{ $.user.name }}`, []string{"user.name"}},
		{`{{ $n := .user.name }}`, nil},
		{`{{ if eq .user.level "金卡" }}金卡{{ end }}`, nil},
		{`{{ .user.birthday | date "1月2日" }} {{ .staff.name }}`, []string{"user.birthday", "staff.name"}},
	} {
		fields, err := PrintedFields(tc.text)
		require.NoError(t, err, tc.text)
		var got []string
		for _, f := range fields {
			got = append(got, f.Name())
		}
		require.Equal(t, tc.want, got, tc.text)
	}
	fields, err := PrintedFields(`好久不见！{{ .owner.name }}为您准备了`)
	require.NoError(t, err)
	require.Equal(t, 8, fields[0].Offset, "the rune offset of the field, for positions in the file")
}

func TestMissingField(t *testing.T) {
	fields, err := PrintedFields(`{{ .user.name }} {{ .owner.name }} {{ .user.traits.orders_30d }} {{ .user.tags }}`)
	require.NoError(t, err)
	full := map[string]any{
		"user":  map[string]any{"name": "林敏", "traits": map[string]any{"orders_30d": 0.0}, "tags": []any{"vip"}},
		"owner": map[string]any{"userid": "lina", "name": "李娜"},
	}
	_, missing := MissingField(fields, full)
	require.False(t, missing, "zero is a value")
	for _, tc := range []struct {
		name string
		edit func(user, owner map[string]any) map[string]any
		want string
	}{
		{"no owner", func(u, o map[string]any) map[string]any { return map[string]any{"user": u} }, "owner.name"},
		{"owner without a name", func(u, o map[string]any) map[string]any {
			return map[string]any{"user": u, "owner": map[string]any{"userid": "lina"}}
		}, "owner.name"},
		{"blank name", func(u, o map[string]any) map[string]any {
			u["name"] = "  "
			return map[string]any{"user": u, "owner": o}
		}, "user.name"},
		{"no traits", func(u, o map[string]any) map[string]any {
			delete(u, "traits")
			return map[string]any{"user": u, "owner": o}
		}, "user.traits.orders_30d"},
		{"no tags", func(u, o map[string]any) map[string]any {
			u["tags"] = []any{}
			return map[string]any{"user": u, "owner": o}
		}, "user.tags"},
	} {
		u := map[string]any{"name": "林敏", "traits": map[string]any{"orders_30d": 2.0}, "tags": []any{"vip"}}
		o := map[string]any{"userid": "lina", "name": "李娜"}
		got, missing := MissingField(fields, tc.edit(u, o))
		require.True(t, missing, tc.name)
		require.Equal(t, tc.want, got, tc.name)
	}
}
