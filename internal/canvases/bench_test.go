package canvases_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/huabu/huabu/examples"
	"github.com/huabu/huabu/internal/canvases"
)

// writeCanvases writes n canvas files, copies of the examples with unique
// ids, the way a large deployment's canvases directory looks.
func writeCanvases(b *testing.B, n int) string {
	dir := b.TempDir()
	names, err := filepathGlob("canvases/*.yaml")
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i++ {
		src, err := examples.FS.ReadFile(names[i%len(names)])
		if err != nil {
			b.Fatal(err)
		}
		text := strings.Replace(string(src), "\nid: ", fmt.Sprintf("\nid: c%04d-", i), 1)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("c%04d.yaml", i)), []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkValidate1000Files is `huabu validate DIR` on 1,000 canvas files:
// reading, parsing, checking and compiling them all. Target: under 2 s.
func BenchmarkValidate1000Files(b *testing.B) {
	dir := writeCanvases(b, 1000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := exampleCompiler(b)
		files, problems, err := c.CompileAll(canvases.Disk{}, []string{dir})
		if err != nil || len(files) != 1000 || problems.HasErrors() {
			b.Fatalf("err %v, %d files, %v", err, len(files), problems)
		}
	}
}

// BenchmarkCompileOne is one example canvas, compiled.
func BenchmarkCompileOne(b *testing.B) {
	c := exampleCompiler(b)
	src, _ := examples.FS.ReadFile("canvases/winback-dormant.yaml")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if p, _ := c.Compile("w.yaml", src); p == nil {
			b.Fatal("no plan")
		}
	}
}
