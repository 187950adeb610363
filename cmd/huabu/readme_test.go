package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The README is a script: TestREADME copies the repository's tracked files
// into a temporary directory (a fresh clone) and runs the shell blocks of
// README.md there, top to bottom, checking the output the README shows.
// Every ```sh block carries an HTML comment right above it (invisible on
// GitHub) that says what the test does with it:
//
//	<!-- test: run -->                each line is run; each must exit 0
//	<!-- test: run, fails -->         each line must exit non-zero
//	<!-- test: start until "TEXT" --> a server: started in the background, ready once it prints TEXT
//	<!-- test: skip (why) -->         illustrative, or not for a test (go test ./..., benchmarks)
//
// In a run block a line ending in `&` is started in the background too, ready
// once it prints the block's `until` text. Background processes run until a
// standalone `<!-- test: stop -->` (where the README tells the reader to
// stop them), which sends them SIGINT as Ctrl-C would. A ```text block
// marked `<!-- test: output -->` must match what the block before it printed
// (stdout and stderr); one marked `<!-- test: log -->` must match what the
// background processes printed, checked when they are stopped. In expected
// text `...` stands for any lines, runs of spaces for any spaces, and
// clock times, dates, zone offsets, durations and pids for any.
//
// Substitutions, so that the commands run here as on a reader's machine:
// `go run ./cmd/huabu` is the huabu binary; `go build -o huabu ./cmd/huabu`
// puts it at ./huabu; paths under /tmp/ go under the test's own temporary
// directory. By default the test binary plays huabu (it is the same
// program, see TestMain); -readme.build builds it with `go build` in the
// copy, as a reader would. A section marked `<!-- test: slow -->` (it waits
// minutes for fake staff) runs only with -readme.slow.
var (
	readmeBuild = flag.Bool("readme.build", false, "TestREADME: build huabu with go build in the fresh copy (default: the test binary plays huabu)")
	readmeSlow  = flag.Bool("readme.slow", false, "TestREADME: also run README sections marked slow (the Staff SOP: minutes of waiting)")
)

// readmeBlock is a fenced code block of README.md and the marker above it.
type readmeBlock struct {
	line    int    // of the opening fence
	section string // the ## heading it is under
	lang    string
	marker  string // the text of <!-- test: ... -->, "" if none
	body    []string
	slow    bool
	stop    bool // a standalone <!-- test: stop --> (no body)
}

var (
	markerRE = regexp.MustCompile(`^<!--\s*test:\s*(.*?)\s*-->$`)
	untilRE  = regexp.MustCompile(`until "([^"]*)"`)
)

// parseREADME returns the README's code blocks and standalone stop markers
// in order.
func parseREADME(text string) ([]readmeBlock, error) {
	var (
		out     []readmeBlock
		section string
		pending string // a marker waiting for its block
		slow    = map[string]bool{}
		lines   = strings.Split(text, "\n")
	)
	for i := 0; i < len(lines); i++ {
		l := strings.TrimRight(lines[i], " \t\r")
		switch {
		case strings.HasPrefix(l, "## "):
			section = strings.TrimPrefix(l, "## ")
		case markerRE.MatchString(l):
			m := markerRE.FindStringSubmatch(l)[1]
			// A marker belongs to the block that follows (blank lines
			// allowed); otherwise it stands alone.
			j := i + 1
			for j < len(lines) && strings.TrimSpace(lines[j]) == "" {
				j++
			}
			if j < len(lines) && strings.HasPrefix(lines[j], "```") {
				pending = m
				continue
			}
			switch m {
			case "stop":
				out = append(out, readmeBlock{line: i + 1, section: section, stop: true})
			case "slow":
				slow[section] = true
			default:
				return nil, fmt.Errorf("README.md:%d: marker %q stands alone; only stop and slow may", i+1, m)
			}
		case strings.HasPrefix(l, "```"):
			b := readmeBlock{line: i + 1, section: section, lang: strings.TrimPrefix(l, "```"), marker: pending}
			pending = ""
			for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
				b.body = append(b.body, lines[i])
			}
			if b.lang == "sh" && b.marker == "" {
				return nil, fmt.Errorf("README.md:%d: a sh block without a <!-- test: run|start|skip --> marker above it", b.line)
			}
			out = append(out, b)
		}
	}
	for i := range out {
		out[i].slow = slow[out[i].section]
	}
	return out, nil
}

// commands joins a block's lines (backslash continuations) and drops blank
// and comment-only lines.
func (b readmeBlock) commands() []string {
	var out []string
	cur := ""
	for _, l := range b.body {
		if strings.HasSuffix(l, "\\") {
			cur += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		cur += l
		if s := strings.TrimSpace(cur); s != "" && !strings.HasPrefix(s, "#") {
			out = append(out, s)
		}
		cur = ""
	}
	return out
}

// readmeRun is one run of the README: the copy, the processes it started.
type readmeRun struct {
	t      *testing.T
	dir    string // the fresh copy: the commands' working directory
	tmp    string // stands for /tmp/
	env    []string
	procs  []*readmeProc
	merged *syncBuffer   // what they print, interleaved as in a terminal
	logs   []readmeBlock // log blocks to check when the processes stop
	output string        // what the last run block printed
}

type readmeProc struct {
	line string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

var backgroundRE = regexp.MustCompile(`\s&\s*$`)

// substitute rewrites a README command to run here.
func (r *readmeRun) substitute(cmd string) string {
	cmd = strings.ReplaceAll(cmd, "go run ./cmd/huabu", "huabu")
	return strings.ReplaceAll(cmd, "/tmp/", r.tmp+"/")
}

func (r *readmeRun) command(line string) *exec.Cmd {
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = r.dir
	cmd.Env = r.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// runLine runs one command to its end and returns what it printed and
// whether it exited 0.
func (r *readmeRun) runLine(b readmeBlock, line string) (string, bool) {
	t := r.t
	command := r.substitute(line)
	if line == "go build -o huabu ./cmd/huabu" && !*readmeBuild {
		command = "cp " + filepath.Join(r.tmp, "bin", "huabu") + " huabu"
	}
	out := &syncBuffer{}
	cmd := r.command(command)
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Logf("README.md:%d: %s (exit %v)\n%s", b.line, line, err, indent(out.String()))
		return out.String(), err == nil
	case <-time.After(5 * time.Minute):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		t.Fatalf("README.md:%d: %s did not end in 5 minutes:\n%s", b.line, line, out)
		return "", false
	}
}

// start runs a server in the background until it prints until.
func (r *readmeRun) start(b readmeBlock, line, until string) {
	t := r.t
	p := &readmeProc{line: line, out: &syncBuffer{}, done: make(chan struct{})}
	// exec: SIGINT goes to the program itself, as Ctrl-C would.
	p.cmd = r.command("exec " + r.substitute(line))
	w := io.MultiWriter(p.out, r.merged)
	p.cmd.Stdout, p.cmd.Stderr = w, w
	require.NoError(t, p.cmd.Start())
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	r.procs = append(r.procs, p)
	deadline := time.After(3 * time.Minute)
	for !strings.Contains(p.out.String(), until) {
		select {
		case <-p.done:
			t.Fatalf("README.md:%d: %s ended before it printed %q:\n%s", b.line, line, until, p.out)
		case <-deadline:
			t.Fatalf("README.md:%d: %s printed no %q in 3 minutes:\n%s", b.line, line, until, p.out)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Logf("README.md:%d: started %s (pid %d)", b.line, line, p.cmd.Process.Pid)
}

// stop interrupts every background process, as Ctrl-C in each terminal
// would, then checks the log blocks against what they printed.
func (r *readmeRun) stop() {
	t := r.t
	for _, p := range r.procs {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			t.Errorf("%s did not stop on SIGINT within 30 s", p.line)
		}
	}
	for _, b := range r.logs {
		matchOutput(t, b, r.merged.String(), false)
	}
	r.procs, r.logs, r.merged = nil, nil, &syncBuffer{}
}

func (r *readmeRun) block(b readmeBlock) {
	t := r.t
	kind, opts, _ := strings.Cut(b.marker, ",")
	kind = strings.TrimSpace(strings.Fields(kind + " x")[0])
	until := ""
	if m := untilRE.FindStringSubmatch(b.marker); m != nil {
		until = m[1]
	}
	switch {
	case b.stop:
		r.stop()
	case kind == "skip" || b.marker == "":
		if b.lang == "sh" {
			t.Logf("README.md:%d: skipped: %s", b.line, b.marker)
		}
	case kind == "output":
		matchOutput(t, b, r.output, true)
	case kind == "log":
		r.logs = append(r.logs, b)
	case kind == "start":
		require.NotEmpty(t, until, "README.md:%d: a start block needs until \"TEXT\"", b.line)
		for _, line := range b.commands() {
			r.start(b, line, until)
		}
	case kind == "run":
		fails := strings.Contains(opts, "fails")
		var printed strings.Builder
		for _, line := range b.commands() {
			if backgroundRE.MatchString(line) {
				require.NotEmpty(t, until, "README.md:%d: a background line needs the block's until \"TEXT\"", b.line)
				r.start(b, backgroundRE.ReplaceAllString(line, ""), until)
				continue
			}
			if missing := missingTool(line); missing != "" {
				t.Logf("README.md:%d: skipped, %s is not installed: %s", b.line, missing, line)
				continue
			}
			out, ok := r.runLine(b, line)
			printed.WriteString(out)
			if fails {
				require.False(t, ok, "README.md:%d: %s should have failed:\n%s", b.line, line, out)
			} else {
				require.True(t, ok, "README.md:%d: %s failed:\n%s", b.line, line, out)
			}
		}
		r.output = printed.String()
	default:
		t.Fatalf("README.md:%d: unknown marker %q", b.line, b.marker)
	}
}

// optionalTools may be missing; a line that pipes into one is skipped.
var optionalTools = []string{"dot"}

func missingTool(line string) string {
	for _, seg := range strings.Split(line, "|") {
		f := strings.Fields(seg)
		if len(f) == 0 {
			continue
		}
		for _, tool := range optionalTools {
			if f[0] == tool {
				if _, err := exec.LookPath(tool); err != nil {
					return tool
				}
			}
		}
	}
	return ""
}

var (
	// Values that differ from run to run: clock times, dates, offsets, pids.
	variableRE = regexp.MustCompile(`\d{4}-\d\d-\d\d|\d\d-\d\d \d\d:\d\d|\d\d:\d\d:\d\d(\.\d+)?|[+-]\d\d:\d\d\b|pid \d+|kill \d+|\b\d+(\.\d+)?m?s\b`)
)

// linePattern turns a line of expected output into a regexp.
func linePattern(line string) *regexp.Regexp {
	var b strings.Builder
	rest := strings.TrimSpace(line)
	for rest != "" {
		loc := variableRE.FindStringIndex(rest)
		lit := rest
		if loc != nil {
			lit = rest[:loc[0]]
		}
		for i, part := range regexp.MustCompile(`\s+`).Split(lit, -1) {
			if i > 0 {
				b.WriteString(`\s+`)
			}
			b.WriteString(regexp.QuoteMeta(part))
		}
		if loc == nil {
			break
		}
		b.WriteString(variablePattern(rest[loc[0]:loc[1]]))
		rest = rest[loc[1]:]
	}
	return regexp.MustCompile(`^` + b.String() + `$`)
}

func variablePattern(v string) string {
	return regexp.MustCompile(`\d+`).ReplaceAllString(regexp.QuoteMeta(v), `\d+`) // same shape, any digits
}

// matchOutput checks that the expected lines of b appear in printed, in
// order and adjacent unless separated by "...". Without contiguous each
// line is looked for anywhere: concurrent processes' logs interleave.
func matchOutput(t *testing.T, b readmeBlock, printed string, contiguous bool) {
	t.Helper()
	if !outputMatches(b.body, printed, contiguous) {
		t.Errorf("README.md:%d (%s): the output the README shows was not printed.\nexpected (in order):\n%s\nprinted:\n%s",
			b.line, b.section, indent(strings.Join(b.body, "\n")), indent(printed))
	}
}

func outputMatches(expected []string, printed string, contiguous bool) bool {
	var got []string
	sc := bufio.NewScanner(strings.NewReader(printed))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		got = append(got, strings.TrimSpace(sc.Text()))
	}
	var groups [][]*regexp.Regexp // runs of adjacent lines, split at "..."
	var cur []*regexp.Regexp
	for _, l := range expected {
		switch s := strings.TrimSpace(l); {
		case s == "...":
			groups, cur = append(groups, cur), nil
		case s == "" && !contiguous:
		default:
			cur = append(cur, linePattern(l))
		}
	}
	return found(append(groups, cur), got, contiguous)
}

func found(groups [][]*regexp.Regexp, got []string, contiguous bool) bool {
	pos := 0
	used := map[string]bool{} // lines of a log already matched
	for _, g := range groups {
		if !contiguous {
			for _, re := range g {
				k := slices.IndexFunc(got, func(l string) bool { return !used[l] && re.MatchString(l) })
				if k < 0 {
					return false
				}
				used[got[k]] = true
			}
			continue
		}
		if len(g) == 0 {
			continue
		}
		at := -1
		for start := pos; start+len(g) <= len(got) && at < 0; start++ {
			ok := true
			for k, re := range g {
				if !re.MatchString(got[start+k]) {
					ok = false
					break
				}
			}
			if ok {
				at = start
			}
		}
		if at < 0 {
			return false
		}
		pos = at + len(g)
	}
	return true
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

// readmePorts are the fixed ports the README's commands use.
var readmePorts = []int{8080, 7233, 9001, 9002, 9003, 9004, 9005}

// TestREADME runs README.md on a fresh copy of the repository.
func TestREADME(t *testing.T) {
	if testing.Short() {
		t.Skip("starts huabu dev and the provider fakes")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	text, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	blocks, err := parseREADME(string(text))
	require.NoError(t, err)

	// The README's commands use fixed ports; on a shared machine someone
	// may be trying it by hand. CI must have them free.
	for _, port := range readmePorts {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("port %d is taken; the README's commands need it: %v", port, err)
			}
			t.Skipf("port %d is taken (someone is trying the README by hand?): %v", port, err)
		}
		ln.Close()
	}

	tmp := t.TempDir()
	r := &readmeRun{t: t, dir: filepath.Join(tmp, "huabu"), tmp: tmp, merged: &syncBuffer{}}
	copyTrackedFiles(t, root, r.dir)
	bin := filepath.Join(tmp, "bin")
	require.NoError(t, os.MkdirAll(bin, 0o755))
	if *readmeBuild {
		began := time.Now()
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, "huabu"), "./cmd/huabu")
		cmd.Dir = r.dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		t.Logf("go build ./cmd/huabu in the fresh copy: %.1fs", time.Since(began).Seconds())
	} else {
		self, err := os.Executable()
		require.NoError(t, err)
		script := "#!/bin/sh\nHUABU_AS_CLI=1 exec " + self + " \"$@\"\n"
		require.NoError(t, os.WriteFile(filepath.Join(bin, "huabu"), []byte(script), 0o755))
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "HUABU_") {
			r.env = append(r.env, kv)
		}
	}
	r.env = append(r.env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Cleanup(r.stop)

	for _, b := range blocks {
		if b.slow && !*readmeSlow {
			continue
		}
		r.block(b)
		if t.Failed() {
			return
		}
	}
	r.stop()
}

// copyTrackedFiles copies the files git tracks (as they are in the working
// tree) from root to dir: what a fresh clone would hold.
func copyTrackedFiles(t *testing.T, root, dir string) {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("git ls-files: %v (not a git checkout?)", err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, name)
		info, err := os.Lstat(src)
		if os.IsNotExist(err) {
			continue // deleted in the working tree, not yet committed
		}
		require.NoError(t, err)
		if !info.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(src)
		require.NoError(t, err)
		dst := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
		require.NoError(t, os.WriteFile(dst, data, info.Mode().Perm()))
	}
}

// TestREADMEMatching: the checks TestREADME makes catch drift — a changed
// count, a missing row — and forgive what differs from run to run.
func TestREADMEMatching(t *testing.T) {
	printed := `run 1 is waiting: {"sent":38}
  40 users go on to offer at 2026-12-03 10:52:48 +08:00

STEP      ENTERED  SENT
reminder  40       38
offer     0        0
huabu: data directory data is in use by another Huabu (pid 20207, started 2026-11-30 02:16:56 +00:00)`
	for _, tc := range []struct {
		name       string
		expected   string
		contiguous bool
		ok         bool
	}{
		{"same, other times and widths", "run 1 is waiting: {\"sent\":38}\n40 users go on to offer at 2026-11-26 13:45:14 +08:00", true, true},
		{"a count changed", "run 1 is waiting: {\"sent\":37}", true, false},
		{"spaces differ", "STEP ENTERED SENT\nreminder 40 38", true, true},
		{"a row missing", "STEP ENTERED SENT\noffer 0 0", true, false},
		{"... skips rows", "STEP ENTERED SENT\n...\noffer 0 0", true, true},
		{"out of order", "offer 0 0\nreminder 40 38", true, false},
		{"pid and offset", "huabu: data directory data is in use by another Huabu (pid 4242, started 2026-11-30 10:12:01 +08:00)", true, true},
		{"logs interleave", "reminder 40 38\nhuabu: data directory data is in use by another Huabu (pid 1, started 2026-11-30 10:12:01 +08:00)", false, true},
		{"logs in any order", "offer 0 0\nreminder 40 38", false, true},
		{"a log line missing", "offer 0 0\nreminder 40 39", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.ok, outputMatches(strings.Split(tc.expected, "\n"), printed, tc.contiguous))
		})
	}
}

// TestREADMEMarkers: every sh block says what the test does with it.
func TestREADMEMarkers(t *testing.T) {
	_, err := parseREADME("## A\n\n```sh\nhuabu dev\n```\n")
	require.EqualError(t, err, "README.md:3: a sh block without a <!-- test: run|start|skip --> marker above it")
	blocks, err := parseREADME("## A\n<!-- test: slow -->\n<!-- test: stop -->\n\n<!-- test: run -->\n```sh\nhuabu run x \\\n  --wait   # comment\n# only a comment\n```\n")
	require.NoError(t, err)
	require.Len(t, blocks, 2)
	require.True(t, blocks[0].stop)
	require.True(t, blocks[1].slow)
	require.Equal(t, []string{"huabu run x    --wait   # comment"}, blocks[1].commands())
}
