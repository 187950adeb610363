package canvases_test

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/huabu/huabu/examples"
	"github.com/huabu/huabu/internal/canvases"
)

// TestJSONSchemaAcceptsExamples checks the generated schema with a real
// JSON Schema validator: every example passes, typical mistakes fail. Editors
// (yaml-language-server) apply the same schema.
func TestJSONSchemaAcceptsExamples(t *testing.T) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(canvases.JSONSchema()))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	require.NoError(t, c.AddResource("canvas.json", doc))
	schema, err := c.Compile("canvas.json")
	require.NoError(t, err)

	asJSON := func(src []byte) any {
		var v any
		require.NoError(t, yaml.Unmarshal(src, &v))
		b, err := json.Marshal(v)
		require.NoError(t, err)
		out, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		require.NoError(t, err)
		return out
	}
	names, err := filepathGlob("canvases/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, names)
	for _, name := range names {
		src, err := examples.FS.ReadFile(name)
		require.NoError(t, err)
		require.NoError(t, schema.Validate(asJSON(src)), name)
	}
	for _, bad := range []string{
		"id: x\ntrigger: {manual: {}}\nsteps: [{id: a, exit: {}, colour: red}]",
		"id: x\ntrigger: {manual: {}}\nsteps: [{id: a, wait: 3 days}]",
		"id: x\ntrigger: {manual: {}, event: {name: e}}\nsteps: [{id: a, exit: {}}]",
		"id: X\ntrigger: {manual: {}}\nsteps: [{id: a, exit: {}}]",
		"id: x\ntrigger: {manual: {}}\nsteps: [{id: a, push: {channel: wechat, text: hi}}]",
	} {
		require.Error(t, schema.Validate(asJSON([]byte(bad))), bad)
	}
}

func filepathGlob(pattern string) ([]string, error) {
	entries, err := examples.FS.ReadDir(filepath.Dir(pattern))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if ok, _ := filepath.Match(filepath.Base(pattern), e.Name()); ok {
			out = append(out, filepath.Dir(pattern)+"/"+e.Name())
		}
	}
	return out, nil
}
