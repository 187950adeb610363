package canvases

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzCompile feeds arbitrary bytes to the whole pipeline: it must never
// panic, every problem must have a position, and every plan must survive a
// JSON round trip with its hash and draw as both diagram formats.
//
//	go test ./internal/canvases -run '^$' -fuzz FuzzCompile -fuzztime 5m
func FuzzCompile(f *testing.F) {
	for _, pattern := range []string{"testdata/errors/*.yaml", "testdata/*.yaml", "../../examples/canvases/*.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, name := range files {
			if data, err := os.ReadFile(name); err == nil {
				f.Add(data)
			}
		}
	}
	c, err := NewCompiler(testOptions())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		plan, problems := c.Compile("fuzz.yaml", data)
		for _, p := range problems {
			if p.Line < 1 || p.Column < 1 || p.Message == "" {
				t.Fatalf("problem without a position or message: %+v", p)
			}
		}
		if problems.HasErrors() != (plan == nil) {
			t.Fatalf("plan %v with errors %v", plan != nil, problems.HasErrors())
		}
		if plan == nil {
			return
		}
		back, err := UnmarshalPlan(plan.JSON())
		if err != nil {
			t.Fatalf("round trip: %v", err)
		}
		if back.Hash != plan.Hash {
			t.Fatalf("hash changed in a round trip")
		}
		_ = plan.Mermaid()
		_ = plan.Dot()
	})
}
