package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/huabu/huabu/examples"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/gcpolicy"
)

// Exit codes of the CONTRACT: 1 for the user's mistakes, 2 for ours.
const (
	exitOK       = 0
	exitUser     = 1
	exitInternal = 2
)

// userError marks failures caused by input (a bad canvas, flag or file).
type userError struct{ err error }

func (e userError) Error() string { return e.err.Error() }
func (e userError) Unwrap() error { return e.err }

func userErrorf(format string, args ...any) error { return userError{fmt.Errorf(format, args...)} }

// silentFailure is returned after the command has printed why it failed.
var silentFailure = userError{errors.New("")}

// cli carries what every command shares.
type cli struct {
	stdin          io.Reader // answers to questions (huabu run's confirmation)
	stdout, stderr io.Writer
	configPath     string
	dataDir        string
	// The running Huabu's admin API: its address (default from the config)
	// and the bearer token (default $HUABU_TOKEN).
	apiAddr string
	token   string
	// tz is the zone times are printed in (default: the config's timezone).
	tz string
	// gc is the garbage collector's policy main set (ADR 055); zero in
	// tests, which run commands inside the test binary.
	gc gcpolicy.Policy
}

func run(args []string, stdout, stderr io.Writer) int {
	return (&cli{stdin: os.Stdin, stdout: stdout, stderr: stderr}).run(args)
}

func (c *cli) run(args []string) int {
	stdout, stderr := c.stdout, c.stderr
	root := &cobra.Command{
		Use:           "huabu",
		Short:         "Marketing canvases on Temporal: validate, draw, deploy and run them",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(args)
	root.PersistentFlags().StringVarP(&c.configPath, "config", "c", "", "config file (default ./huabu.yaml, else the built-in example config)")
	root.PersistentFlags().StringVar(&c.dataDir, "data", "data", "data directory: the store (unless store.dsn is set) and embedded Temporal")
	root.PersistentFlags().StringVar(&c.apiAddr, "server", "", "address of the running Huabu's admin API (default: the config's http.admin_listen, else http.listen)")
	root.PersistentFlags().StringVar(&c.apiAddr, "api", "", "the same as --server")
	_ = root.PersistentFlags().MarkHidden("api")
	root.PersistentFlags().StringVar(&c.token, "token", "", "bearer token for the admin API (default: $"+TokenEnv+"); one of the server's auth.tokens")
	root.PersistentFlags().StringVar(&c.tz, "tz", "", "time zone times are printed in, e.g. UTC or Asia/Shanghai (default: the config's timezone)")
	root.AddCommand(c.validateCmd(), c.estimateCmd(), c.simulateCmd(), c.graphCmd(), c.schemaCmd(), c.devCmd(), c.workerCmd(), c.deployCmd(), c.runCmd(),
		c.importCmd(), c.reportCmd(), c.outboxCmd(), c.runsCmd(), c.benchCmd(), c.syncCmd(), c.fakeCmd(),
		c.approveCmd(), c.auditCmd(), c.suppressCmd(), c.forgetCmd(), c.testSendCmd(),
		c.controlCmd("pause", "Pause a canvas: nothing is sent, cohorts hold where they are, schedules wait"),
		c.controlCmd("resume", "Resume a paused or stopped canvas; messages held longer than policy.resume_grace are not sent (reason expired)"),
		c.controlCmd("stop", "Stop a canvas: its running runs end, nothing more is sent (reason stopped), no new runs until resumed"),
		c.versionCmd())
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return userError{err} })

	err := root.Execute()
	var problems canvases.Problems
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, silentFailure):
		return exitUser
	case errors.As(err, &problems):
		// A config's problems, like a canvas's: one per line, all of them.
		for _, p := range problems {
			fmt.Fprintln(stderr, p.String())
		}
		return exitUser
	}
	fmt.Fprintf(stderr, "huabu: %v\n", err)
	var ue userError
	if errors.As(err, &ue) || isUsageError(err) {
		return exitUser
	}
	return exitInternal
}

// isUsageError recognises cobra's own argument errors.
func isUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires ", "invalid argument"} {
		if len(msg) >= len(p) && (msg[:len(p)] == p || contains(msg, p)) {
			return true
		}
	}
	return false
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// loadConfig reads -c, else ./huabu.yaml, else the built-in example config.
func (c *cli) loadConfig() (*config.Config, error) {
	path := c.configPath
	if path == "" {
		if _, err := os.Stat(config.DefaultFile); err != nil {
			return builtinConfig()
		}
		path = config.DefaultFile
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, userError{err}
	}
	return cfg, nil
}

func builtinConfig() (*config.Config, error) {
	src, err := examples.FS.ReadFile("huabu.yaml")
	if err != nil {
		return nil, err
	}
	cfg, err := config.Parse("(built-in example config)", "", src)
	if err != nil {
		return nil, err
	}
	cfg.FS = examples.FS
	return cfg, nil
}

// canvasSource says where the config's canvases directory is.
func canvasSource(cfg *config.Config) (canvases.Source, string) {
	if cfg.FS != nil {
		return canvases.FS{FS: cfg.FS}, filepath.ToSlash(filepath.Clean(cfg.Canvases))
	}
	return canvases.Disk{}, cfg.Path(cfg.Canvases)
}

// compiler builds the canvas compiler of the config.
func (c *cli) compiler() (*config.Config, *canvases.Compiler, error) {
	cfg, err := c.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	comp, err := cfg.Compiler()
	if err != nil {
		return nil, nil, userError{err}
	}
	return cfg, comp, nil
}
