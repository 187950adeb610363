package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/huabu/huabu/bench"
	"github.com/huabu/huabu/channels/fakes"
)

func (c *cli) benchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Measure Huabu on this machine"}
	var opts bench.Options
	var verbose bool
	var cpuProfile string
	broadcast := &cobra.Command{
		Use:   "broadcast",
		Short: "Broadcast to N synthetic users through a local JPush-compatible server; compare with one workflow per user",
		Long: `Seed N synthetic profiles, run a scheduled broadcast canvas with an audience filter through the
push channel to a JPush-compatible provider on a local HTTP server (a child process), and print wall
time, recipients per second, peak RSS and the length of the run's Temporal history. With --per-user K,
also send the same push to K users as one cohort and as K workflows (one per user), side by side.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Users <= 0 {
				return userErrorf("--users must be at least 1")
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			url, stop, err := bench.StartProvider(cmd.Context(), self, "bench", "provider")
			if err != nil {
				return err
			}
			defer stop()
			opts.Provider, opts.Out = url, c.stdout
			opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
			if verbose {
				opts.Log = slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			_, err = bench.Broadcast(cmd.Context(), opts)
			return err
		},
	}
	broadcast.Flags().IntVar(&opts.Users, "users", 100000, "profiles to seed and broadcast to")
	broadcast.Flags().IntVar(&opts.PerUser, "per-user", 2000, "users in the cohort vs one-workflow-per-user comparison (0: skip)")
	broadcast.Flags().StringVar(&opts.DataDir, "bench-data", "", "keep the benchmark's data here (default: a temporary directory)")
	broadcast.Flags().BoolVar(&verbose, "verbose", false, "show warnings from the stack")
	broadcast.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole benchmark here")

	provider := &cobra.Command{
		Use:    "provider",
		Short:  "Serve a JPush-compatible fake provider (used by bench broadcast)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f := fakes.NewJPush("bench-app", "bench-secret")
			defer f.Close()
			b, _ := json.Marshal(map[string]string{"URL": f.URL()})
			fmt.Fprintln(c.stdout, string(b))
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
			<-sig
			return nil
		},
	}
	cmd.AddCommand(broadcast, provider)
	return cmd
}
