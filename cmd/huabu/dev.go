package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/huabu/huabu/internal/app"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/reports"
)

func (c *cli) devCmd() *cobra.Command {
	var temporalPort int
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything in one process: embedded Temporal, store, worker and HTTP API",
		Long: `Run Huabu in one process: an embedded Temporal server (SQLite under --data),
the store, the worker and the HTTP API; deploy the config's canvases directory; run until
interrupted (Ctrl-C or SIGTERM), then shut down cleanly. Restarting with the same --data
resumes every running canvas.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.serve(cmd.Context(), true, temporalPort)
		},
	}
	cmd.Flags().IntVar(&temporalPort, "temporal-port", 7233, "port of the embedded Temporal frontend (0: any free port)")
	return cmd
}

func (c *cli) workerCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "worker",
		Short: "Run a long-lived worker against the Temporal cluster in the config (and the HTTP API unless disabled)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.serve(cmd.Context(), false, 0)
		},
	}
}

// serve starts the app and waits for a signal.
func (c *cli) serve(ctx context.Context, dev bool, temporalPort int) error {
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	if !dev && cfg.Temporal.Embedded() {
		return userErrorf("temporal.address is %q; `huabu worker` needs host:port of a Temporal frontend (use `huabu dev` for the embedded one)", cfg.Temporal.Address)
	}
	log := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if c.gc.PercentFrom != "" {
		log.Info("garbage collector", "policy", c.gc.String())
	}
	if cfg.File == "" || cfg.FS != nil {
		log.Info("no huabu.yaml here and no -c: using the built-in example config and canvases")
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	began := time.Now()
	progress := func(step string) {
		fmt.Fprintf(c.stderr, "huabu: %s… (%.1fs)\n", step, time.Since(began).Seconds())
	}
	running, err := app.Start(ctx, app.Options{Config: cfg, DataDir: c.dataDir, Logger: log, TemporalPort: temporalPort, Progress: progress})
	if err != nil {
		var inUse *app.DataDirInUseError
		var addr *app.AddrInUseError
		if errors.Is(err, app.ErrInvalidCanvases) || errors.As(err, &inUse) || errors.As(err, &addr) || errors.Is(err, syscall.EADDRINUSE) {
			return userError{err}
		}
		return err
	}
	api := fmt.Sprintf("  API       http://%s  (GET /healthz, /api/v1/canvases)\n", running.HTTPAddr())
	if running.AdminAddr() != running.HTTPAddr() {
		api = fmt.Sprintf("  API       http://%s  (public: /v1, /wecom/callback, /healthz)\n  admin API http://%s  (/api/v1, /metrics)\n", running.HTTPAddr(), running.AdminAddr())
	}
	zone, _ := canvases.LoadLocation(cfg.Timezone)
	fmt.Fprintf(c.stderr, "\nHuabu is running (started in %.1fs, at %s).\n%s  Temporal  %s  namespace %s\n  data      %s\n%sCtrl-C stops.\n\n",
		time.Since(began).Seconds(), reports.FormatTime(time.Now(), zone), api, running.TemporalAddress(), cfg.Temporal.Namespace, c.dataDir, c.tryLines(dev))
	<-ctx.Done()
	log.Info("shutting down")
	if err := running.Close(); err != nil {
		log.Warn("shutdown", "err", err)
	}
	return nil
}

// tryLines is the banner's first steps, with the flags this process was
// started with so that they reach it (and its store).
func (c *cli) tryLines(dev bool) string {
	if !dev {
		return ""
	}
	flags := ""
	if c.configPath != "" {
		flags += " -c " + c.configPath
	}
	if c.dataDir != "data" {
		flags += " --data " + c.dataDir
	}
	var b strings.Builder
	b.WriteString("Try, in another terminal (the example files are in the repository's examples/):\n")
	for _, line := range []string{
		"huabu import profiles examples/profiles.jsonl" + flags + "   # 40 customers",
		"huabu import staff examples/staff.jsonl" + flags + "         # their advisers: names in messages",
		"huabu import events examples/events.jsonl" + flags + "       # purchases: RFM scores",
		"huabu run winback-dormant --wait" + flags,
		"huabu outbox" + flags,
	} {
		fmt.Fprintf(&b, "  %s\n", line)
	}
	return b.String()
}
