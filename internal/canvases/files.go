package canvases

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// File is one compiled canvas file.
type File struct {
	Path     string
	Plan     *Plan // nil when the file has errors
	Problems Problems
	Source   []byte // the YAML read (version history keeps it)
}

// Source reads canvas files from the disk or from an embedded tree.
type Source interface {
	ReadFile(name string) ([]byte, error)
	ReadDir(name string) ([]fs.DirEntry, error)
	Stat(name string) (fs.FileInfo, error)
	Join(elem ...string) string
}

// Disk reads from the file system with paths as the user wrote them.
type Disk struct{}

func (Disk) ReadFile(name string) ([]byte, error)       { return os.ReadFile(name) }
func (Disk) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }
func (Disk) Stat(name string) (fs.FileInfo, error)      { return os.Stat(name) }
func (Disk) Join(elem ...string) string                 { return filepath.Join(elem...) }

// FS reads from an fs.FS such as the embedded examples.
type FS struct{ fs.FS }

func (f FS) ReadFile(name string) ([]byte, error)       { return fs.ReadFile(f.FS, name) }
func (f FS) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(f.FS, name) }
func (f FS) Stat(name string) (fs.FileInfo, error)      { return fs.Stat(f.FS, name) }
func (f FS) Join(elem ...string) string                 { return path.Join(elem...) }

// IsCanvasFile reports whether a name looks like a canvas file.
func IsCanvasFile(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

// expand turns files and directories into the list of canvas files, sorted.
func expand(src Source, paths []string) ([]string, error) {
	var files []string
	var walk func(dir string) error
	walk = func(dir string) error {
		entries, err := src.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			p := src.Join(dir, e.Name())
			switch {
			case e.IsDir() && !strings.HasPrefix(e.Name(), "."):
				if err := walk(p); err != nil {
					return err
				}
			case !e.IsDir() && IsCanvasFile(e.Name()):
				files = append(files, p)
			}
		}
		return nil
	}
	for _, p := range paths {
		info, err := src.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, unwrapPathError(err))
		}
		if info.IsDir() {
			if err := walk(p); err != nil {
				return nil, err
			}
		} else {
			files = append(files, p)
		}
	}
	sort.Strings(files)
	return files, nil
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

// CompileAll compiles canvas files and directories in parallel and checks
// that canvas ids are unique across them. It fails only when a path given
// does not exist; every problem inside files is in the returned Problems.
func (c *Compiler) CompileAll(src Source, paths []string) ([]File, Problems, error) {
	names, err := expand(src, paths)
	if err != nil {
		return nil, nil, err
	}
	files := make([]File, len(names))
	idLine, idCol := make([]int, len(names)), make([]int, len(names))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				files[i].Path = names[i]
				data, err := src.ReadFile(names[i])
				if err != nil {
					files[i].Problems = Problems{{File: names[i], Line: 1, Column: 1, Severity: Error, Message: fmt.Sprintf("cannot read: %v", unwrapPathError(err))}}
					continue
				}
				files[i].Source = data
				files[i].Plan, files[i].Problems = c.Compile(names[i], data)
				idLine[i], idCol[i] = topLevelKey(data, "id")
			}
		}()
	}
	for i := range names {
		next <- i
	}
	close(next)
	wg.Wait()

	var all Problems
	firstFile := map[string]string{}
	for i := range files {
		f := &files[i]
		if f.Plan != nil {
			if other, dup := firstFile[f.Plan.ID]; dup {
				f.Problems = append(f.Problems, Problem{File: f.Path, Line: idLine[i], Column: idCol[i], Severity: Error, Path: "id",
					Message: fmt.Sprintf("canvas id %q is also used by %s; ids must be unique", f.Plan.ID, other)})
				f.Plan = nil
			} else {
				firstFile[f.Plan.ID] = f.Path
			}
		}
		all = append(all, f.Problems...)
	}
	return files, all, nil
}

// topLevelKey finds where a top-level key's value starts, for problems that
// are found after parsing (1:1 when not found).
func topLevelKey(src []byte, key string) (line, col int) {
	for i, l := range strings.Split(string(src), "\n") {
		if rest, ok := strings.CutPrefix(l, key+":"); ok {
			return i + 1, len(key) + 2 + len(rest) - len(strings.TrimLeft(rest, " "))
		}
	}
	return 1, 1
}
