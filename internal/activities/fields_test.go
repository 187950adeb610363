package activities

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
)

// TestDecodeFieldsAsUnmarshal: the audience scan's decoder gives the wanted
// members exactly as json.Unmarshal into a map does, and rejects what it
// rejects.
func TestDecodeFieldsAsUnmarshal(t *testing.T) {
	want := []string{"city", "tags", "level", "a\"b", "n"}
	for _, doc := range []string{
		`{"id":"u1","name":"用户1","city":"上海","level":"金卡","push_alias":"u1"}`,
		` { "city" : "北京" , "tags" : [ "退订", "vip" ] , "x": {"city": "no", "y": [1, {"z": "}"}]} } `,
		`{"name":"a \"quoted\" } name","city":"c\\","level":"l"}`,
		`{"city":"first","city":"last"}`,
		`{"ci\u0074y":"escaped name","a\"b":1,"n":null}`,
		`{"level":12.5e3,"tags":[],"city":true,"other":false}`,
		`{"City":"case differs"}`,
		`{}`,
		`null`,
		`[1,2]`,
		`"city"`,
		`12`,
		`{"city":"unterminated}`,
		`{"city":"x",}`,
		``,
		`{"city":"\ud83d\ude00 \u4e0a"}`,
		// Numbers json.Valid accepts and json.Unmarshal rejects (out of
		// float64's range), in skipped members, nested, and wanted.
		`{"city":"上海","balance":1e400}`,
		`{"balance":-1E+400,"city":"上海"}`,
		`{"city":"上海","x":{"y":[1,2e999]}}`,
		`{"city":"上海","level":1e400}`,
		`{"city":"上海","balance":1e-400,"tiny":[4.9e-324]}`,
		`{"city":"上海","big":1` + strings.Repeat("0", 400) + `}`,
		`{"city":"上海","x":[true,false,null,-0.5e-3,"1e400"]}`,
		// The grammar, checked as the document is walked (no json.Valid
		// first), in skipped and wanted members.
		`{"x":01,"city":"c"}`, `{"x":-,"city":"c"}`, `{"x":1.,"city":"c"}`, `{"x":.5}`, `{"x":1e}`, `{"x":1e+}`,
		`{"x":-0.0e-0,"city":"c"}`, `{"x":+1}`, `{"x":0x10}`, `{"x":1E5,"level":-12}`,
		`{"x":tru}`, `{"x":nul,"city":"c"}`, `{"x":truex}`, `{"x":falsey}`, `{"city":nullx}`,
		`{"x":"\q"}`, `{"x":"\u12"}`, `{"x":"\u12G4"}`, `{"x":"\u00e9\/\b\f\n\r\t"}`, "{\"x\":\"tab\tin\"}", "{\"x\":\"\x7f\xff\"}",
		`{"x":[1,]}`, `{"x":[,1]}`, `{"x":[1 2]}`, `{"x":{"a" 1}}`, `{"x":{"a":1,}}`, `{"x":{1:2}}`, `{"x":{"a":1}}}`,
		`{"city":"c"} x`, `{"city":"c"}{}`, `{"city":"c"`, `{"city"}`, `{"city":}`, `{,"city":"c"}`, `{"city":"c",,"x":1}`,
		`{"x":[[[[]]]],"tags":[{"a":[1,{"b":null}]}]}`, ` null `, `nul`, `null x`, `{} `, `{}x`,
		`{"x":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`,
		`{"x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
	} {
		requireDecodesAsUnmarshal(t, []byte(doc), want)
	}
}

// requireDecodesAsUnmarshal: decodeFields gives the wanted members as
// json.Unmarshal into a map does, and fails where it fails.
func requireDecodesAsUnmarshal(t *testing.T, doc []byte, want []string) {
	t.Helper()
	var full map[string]any
	fullErr := json.Unmarshal(doc, &full)
	got, err := decodeFields(doc, want)
	// Into a map a previous profile left values in (the audience scan's
	// workers reuse theirs): the same, with nothing of the previous one.
	stale := map[string]any{"city": "stale", "level": "stale", "other": 1}
	reused, reusedErr := decodeFieldsInto(stale, doc, want)
	require.Equal(t, err != nil, reusedErr != nil, "%q", doc)
	if err == nil {
		require.Equal(t, got, reused, "%q", doc)
	}
	if fullErr != nil {
		require.Error(t, err, "%q", doc)
		return
	}
	require.NoError(t, err, "%q", doc)
	if full == nil {
		require.Nil(t, got, "%q", doc)
		return
	}
	expected := map[string]any{}
	for _, w := range want {
		if v, ok := full[w]; ok {
			expected[w] = v
		}
	}
	require.Equal(t, expected, got, "%q", doc)
}

// FuzzDecodeFields: on any input decodeFields accepts exactly what
// json.Unmarshal into a map accepts, with the same wanted members.
func FuzzDecodeFields(f *testing.F) {
	for _, seed := range []string{
		`{"city":"上海","tags":["a",{"b":[1,2e3]}],"level":null}`, `{"x":01}`, `{"x":"\u12G4"}`, `null`, `[1]`,
		`{"city":1e400}`, `{"a":{"b":{"c":[true,false,null]}}}`, `{"x":"\ud83d\ude00"}`, ` {"city" : "c" } `,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		requireDecodesAsUnmarshal(t, doc, []string{"city", "tags", "level", "x"})
	})
}

func BenchmarkDecodeProfile(b *testing.B) {
	doc := []byte(`{"id":"u000001","name":"用户1","city":"上海","level":"金卡","push_alias":"u000001","tags":["a","b"],"phone":"13800000000","email":"u1@example.com"}`)
	b.Run("map", func(b *testing.B) {
		for b.Loop() {
			var m map[string]any
			_ = json.Unmarshal(doc, &m)
		}
	})
	b.Run("fields", func(b *testing.B) {
		for b.Loop() {
			_, _ = decodeFields(doc, []string{"city", "tags", "level"})
		}
	})
	// A send without templates reads only the addresses (sender.load).
	b.Run("addresses", func(b *testing.B) {
		for b.Loop() {
			_, _ = decodeFields(doc, addressFields)
		}
	})
	b.Run("addresses-struct", func(b *testing.B) { // before session 7 (sender.load)
		type addresses struct {
			Owner               string `json:"owner"`
			Phone               string `json:"phone"`
			Email               string `json:"email"`
			WeComExternalUserID string `json:"wecom_external_userid"`
			WeComUserID         string `json:"wecom_userid"`
			PushAlias           string `json:"push_alias"`
			PushRegistrationID  string `json:"push_registration_id"`
		}
		for b.Loop() {
			var a addresses
			_ = json.Unmarshal(doc, &a)
			doc := make(map[string]any, 4)
			set := func(k, v string) {
				if v != "" {
					doc[k] = v
				}
			}
			set("owner", a.Owner)
			set("phone", a.Phone)
			set("email", a.Email)
			set("wecom_external_userid", a.WeComExternalUserID)
			set("wecom_userid", a.WeComUserID)
			set("push_alias", a.PushAlias)
			set("push_registration_id", a.PushRegistrationID)
		}
	})
}

// BenchmarkAudienceProfile: one profile through the audience scan's decode
// and condition (entrant.match), with `huabu bench broadcast`'s audience
// and documents: "fresh" builds a map and an environment per profile (as
// before ADR 051), "reused" reuses a worker's.
func BenchmarkAudienceProfile(b *testing.B) {
	c, err := canvases.NewCompiler(canvases.Options{Schema: canvases.Schema{
		Attributes: map[string]canvases.FieldType{"name": canvases.TypeString, "city": canvases.TypeString, "level": canvases.TypeString}}})
	require.NoError(b, err)
	cond, err := c.CompileCondition(`user.city != "" && !("退订" in user.tags) && user.level in ["普通", "银卡", "金卡", "钻石"]`, "")
	require.NoError(b, err)
	fields, known := cond.UserFields()
	require.True(b, known)
	doc := []byte(`{"id":"b0000001","name":"用户1","city":"北京","level":"银卡","push_alias":"b0000001"}`)
	b.Run("fresh", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m, _ := decodeFields(doc, fields)
			if ok, err := cond.Eval(m, nil); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("reused", func(b *testing.B) {
		b.ReportAllocs()
		var reuse map[string]any
		eval := cond.Evaluator()
		for b.Loop() {
			reuse, _ = decodeFieldsInto(reuse, doc, fields)
			if ok, err := eval.Eval(reuse, nil); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
}
