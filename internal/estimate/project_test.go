package estimate

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestProject(t *testing.T) {
	keys := map[string]bool{"rfm": true, "tags": true, "name": true}
	for _, tc := range []struct {
		doc  string
		want map[string]any
		err  bool
	}{
		{`{}`, map[string]any{}, false},
		{` { "name" : "徐静", "phone":"1380", "tags":["a","b"], "rfm":{"r":1,"m":5}} `,
			map[string]any{"name": "徐静", "tags": []any{"a", "b"}, "rfm": map[string]any{"r": 1.0, "m": 5.0}}, false},
		{`{"x":{"tags":[1]},"y":"}\"{","name":null,"z":[{"a":"]"}],"n":-1.5e3,"b":true}`, map[string]any{"name": nil}, false},
		{`{"na\u006de":"escaped"}`, map[string]any{"name": "escaped"}, false},
		{`[]`, nil, true},
		{`{"name":}`, nil, true},
		{`{"name":"x"`, nil, true},
		{`{"name":"x"} trailing`, nil, true},
		{`{"a":[1,2}`, nil, true},
	} {
		got, err := project([]byte(tc.doc), keys)
		if tc.err {
			require.Error(t, err, tc.doc)
			continue
		}
		require.NoError(t, err, tc.doc)
		require.Equal(t, tc.want, got, tc.doc)
	}
	all, err := project([]byte(`{"a":1,"b":"x"}`), nil)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"a": 1.0, "b": "x"}, all)
}

// FuzzProject: whatever the input, project never panics, and on a valid
// object it keeps exactly what encoding/json decodes for those keys.
func FuzzProject(f *testing.F) {
	for _, s := range []string{`{}`, `{"name":"a","tags":["x"],"rfm":{"r":1}}`, `{"a":"\"}","name":[{}]}`, `{"name":1e5}`} {
		f.Add([]byte(s))
	}
	keys := map[string]bool{"name": true, "tags": true, "rfm": true}
	f.Fuzz(func(t *testing.T, doc []byte) {
		got, err := project(doc, keys)
		var full map[string]any
		if json.Unmarshal(doc, &full) != nil || full == nil {
			return // invalid JSON may or may not be refused; it must not panic
		}
		require.NoError(t, err)
		want := map[string]any{}
		for k := range keys {
			if v, ok := full[k]; ok {
				want[k] = v
			}
		}
		require.Equal(t, want, got)
	})
}

func TestUserFields(t *testing.T) {
	for _, tc := range []struct {
		src  string
		keys []string
		all  bool
	}{
		{`user.rfm.r <= 2 && user.rfm.m >= 4 && !("vip" in user.tags)`, []string{"rfm", "tags"}, false},
		{`user.trial_ends_at > now() && user.trial_ends_at < now() + duration("72h")`, []string{"trial_ends_at"}, false},
		{`any(user.tags, # == "x") && user.level == "金卡"`, []string{"tags", "level"}, false},
		{`event.amount >= 500`, nil, false},
		{`let u = user; u.level == "x"`, nil, true},
		{`user["level"] == "x"`, []string{"level"}, false},
		{`user[event.key] == "x"`, nil, true},
		{`(`, nil, true},
	} {
		f := newUserFields()
		f.add(tc.src)
		require.Equal(t, tc.all, f.all, tc.src)
		if !tc.all {
			var keys []string
			for k := range f.keys {
				keys = append(keys, k)
			}
			require.ElementsMatch(t, tc.keys, keys, tc.src)
		}
	}
}
