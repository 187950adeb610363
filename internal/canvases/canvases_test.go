package canvases

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite golden files and generated docs")

// testOptions is the config the golden files are checked against: the
// example schema, WeCom and Aliyun SMS configured, email not.
func testOptions() Options {
	return Options{
		Schema: Schema{
			Attributes: map[string]FieldType{"name": TypeString, "city": TypeString, "level": TypeString, "balance": TypeNumber, "birthday": TypeDate},
			Traits:     map[string]FieldType{"orders_30d": TypeInteger, "spend_90d": TypeNumber},
			RFM:        true,
			Events:     map[string]map[string]FieldType{"purchase": {"amount": TypeNumber, "sku": TypeString}},
		},
		Channels: map[string]string{"wecom.app": "wecom", "wecom.customer": "wecom", "wecom.group": "wecom", "sms": "aliyun", "push": "jpush", "outbox": "outbox"},
		// aliyun's spec (channels.Spec.TemplateCodeOnly); config derives it.
		TemplateCodeOnly: map[string]bool{"sms": true},
	}
}

func testCompiler(t testing.TB) *Compiler {
	t.Helper()
	c, err := NewCompiler(testOptions())
	require.NoError(t, err)
	return c
}

// golden compares got with a file, or rewrites it under -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "missing golden file; run go test ./internal/canvases -update")
	require.Equal(t, string(want), got, "stale golden file %s; run go test ./internal/canvases -update and review the diff", path)
}

// TestProblemsGolden checks every canvas in testdata/errors against its
// .golden file: the exact FILE:LINE:COL: severity: path: message lines.
func TestProblemsGolden(t *testing.T) {
	c := testCompiler(t)
	files, err := filepath.Glob("testdata/errors/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			plan, problems := c.CompileFile(f)
			var b strings.Builder
			for _, p := range problems {
				b.WriteString(p.String())
				b.WriteByte('\n')
			}
			golden(t, strings.TrimSuffix(f, ".yaml")+".golden", b.String())
			if problems.HasErrors() {
				require.Nil(t, plan, "a canvas with errors must not compile")
			} else {
				require.NotNil(t, plan)
			}
		})
	}
}

func TestFiveMistakesFiveLines(t *testing.T) {
	_, problems := testCompiler(t).CompileFile("testdata/errors/five_mistakes.yaml")
	require.Len(t, problems, 5, problems.Error())
	for _, p := range problems {
		require.Equal(t, Error, p.Severity)
	}
}
