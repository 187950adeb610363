package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: no input makes the config parser panic, and a config it
// accepts is one it accepts again.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/errors/*.yaml")
	seeds = append(seeds, "../../examples/huabu.yaml", "../../examples/huabu-fakes.yaml")
	for _, s := range seeds {
		if src, err := os.ReadFile(s); err == nil {
			f.Add(src)
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if _, err := Parse("huabu.yaml", "", src); err == nil {
			if _, err := Parse("huabu.yaml", "", src); err != nil {
				t.Fatalf("accepted once, refused the second time: %v", err)
			}
		}
	})
}
