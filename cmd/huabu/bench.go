package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/huabu/huabu/internal/bench"
	"github.com/huabu/huabu/internal/channels/fakes"
)

func (c *cli) benchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Measure Huabu on this machine"}
	var opts bench.Options
	var verbose bool
	var profiles benchProfiles
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
			provider, err := startBenchProvider(cmd)
			if err != nil {
				return err
			}
			defer provider.Stop()
			opts.Provider, opts.FirstPush, opts.ProviderCPU, opts.Out, opts.Log = provider.URL, provider.FirstPush, provider.CPU, c.stdout, c.benchLogger(verbose)
			stopProfiles, err := profiles.start()
			if err != nil {
				return err
			}
			_, err = bench.Broadcast(cmd.Context(), opts)
			return errors.Join(err, stopProfiles())
		},
	}
	broadcast.Flags().IntVar(&opts.Users, "users", 100000, "profiles to seed and broadcast to")
	broadcast.Flags().IntVar(&opts.PerUser, "per-user", 2000, "users in the cohort vs one-workflow-per-user comparison (0: skip)")
	broadcast.Flags().StringVar(&opts.DataDir, "bench-data", "", "keep the benchmark's data here (default: a temporary directory)")
	broadcast.Flags().StringVar(&opts.Postgres, "postgres", "", "the store: this empty PostgreSQL database or schema (DSN) instead of SQLite; one holding canvases, profiles, runs or events is refused")
	broadcast.Flags().IntVar(&opts.Workers, "workers", 1, "workers sharing the broadcast (with --postgres): the others run in this process on the same store and Temporal server")
	broadcast.Flags().BoolVar(&verbose, "verbose", false, "show warnings from the stack")
	profiles.addFlags(broadcast)

	provider := &cobra.Command{
		Use:    "provider",
		Short:  "Serve a JPush-compatible fake provider (used by bench broadcast)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f := fakes.NewJPush("bench-app", "bench-secret")
			defer f.Close()
			f.KeepRequests = false // nobody reads them: a million recipients' requests would only cost copies
			b, _ := json.Marshal(map[string]string{"URL": f.URL()})
			fmt.Fprintln(c.stdout, string(b))
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
			select {
			case <-sig:
				return nil
			case <-f.FirstPushed():
				// The bench's time to first message: the parent reads this line.
				b, _ := json.Marshal(map[string]time.Time{"FirstPush": f.FirstPush()})
				fmt.Fprintln(c.stdout, string(b))
			}
			<-sig
			return nil
		},
	}
	cmd.AddCommand(broadcast, provider, c.benchWaitCmd(), c.benchIngestCmd(), c.benchEventsCmd(), c.benchEstimateCmd(), c.benchSimulateCmd())
	return cmd
}

func (c *cli) benchWaitCmd() *cobra.Command {
	var opts bench.WaitOptions
	var verbose bool
	var profiles benchProfiles
	cmd := &cobra.Command{
		Use:   "wait",
		Short: "N users wait for an event, half of them send it: thanked by push through a local JPush-compatible server, the rest time out",
		Long: `Seed N synthetic profiles and run a canvas whose first step waits for the event purchase (--timeout);
store a purchase event for every other user, as the ingestion API does, which the router turns into
arrivals; those users are thanked with a push through a JPush-compatible provider on a local HTTP server
(a child process), the rest leave at the timeout. Prints the time to enter and open the wait, to store
the events, to thank every sender, the run's wall time (and how much of it was idle until the timeout)
and peak RSS.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Users <= 0 {
				return userErrorf("--users must be at least 1")
			}
			provider, err := startBenchProvider(cmd)
			if err != nil {
				return err
			}
			defer provider.Stop()
			opts.Provider, opts.Out, opts.Log = provider.URL, c.stdout, c.benchLogger(verbose)
			stopProfiles, err := profiles.start()
			if err != nil {
				return err
			}
			// Interrupted, it stops where it is (the profiles are kept).
			ctx, cancel := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer cancel()
			_, err = bench.Wait(ctx, opts)
			return errors.Join(err, stopProfiles())
		},
	}
	cmd.Flags().IntVar(&opts.Users, "users", 100000, "profiles to seed; all enter, every other one sends the event")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 3*time.Minute, "the wait's timeout: long enough for the events to be routed")
	cmd.Flags().StringVar(&opts.DataDir, "bench-data", "", "keep the benchmark's data here (default: a temporary directory)")
	cmd.Flags().StringVar(&opts.Postgres, "postgres", "", "the store: this empty PostgreSQL database or schema (DSN) instead of SQLite; one holding canvases, profiles, runs or events is refused")
	cmd.Flags().BoolVar(&verbose, "verbose", false, "show warnings from the stack")
	profiles.addFlags(cmd)
	return cmd
}

// startBenchProvider starts the JPush-compatible fake as a child process
// (this binary's hidden `bench provider`), so its HTTP work is not counted
// in the bench's own CPU and memory.
func startBenchProvider(cmd *cobra.Command) (*bench.Provider, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return bench.StartProvider(cmd.Context(), self, "bench", "provider")
}

func (c *cli) benchLogger(verbose bool) *slog.Logger {
	if verbose {
		return slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (c *cli) benchIngestCmd() *cobra.Command {
	var opts bench.EventOptions
	var verbose bool
	var profiles benchProfiles
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "Events accepted per second through POST /v1/batch of the running stack's HTTP server",
		Long: `Start the embedded stack (Temporal, store, worker, router, traits engine, HTTP API) with the example
config's computed traits, RFM and tags, post --events track events (purchases and app opens of --users
users) in /v1/batch requests of --batch from --clients concurrent clients, and print the events
accepted (validated and fsynced to the accept log) per second, how soon all of them were in the
event store (the sustained rate), then how long the router and the traits took to catch up.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Events <= 0 {
				return userErrorf("--events must be at least 1")
			}
			opts.Out, opts.Log = c.stdout, c.benchLogger(verbose)
			stopProfiles, err := profiles.start()
			if err != nil {
				return err
			}
			return errors.Join(bench.Ingest(cmd.Context(), opts), stopProfiles())
		},
	}
	cmd.Flags().IntVar(&opts.Events, "events", 200000, "events to send")
	cmd.Flags().IntVar(&opts.Batch, "batch", 500, "events per request")
	cmd.Flags().IntVar(&opts.Clients, "clients", 8, "concurrent HTTP clients")
	cmd.Flags().IntVar(&opts.Users, "users", 100000, "distinct users the events name")
	cmd.Flags().BoolVar(&opts.NoTraits, "no-traits", false, "leave computed traits, RFM and tags out of the config (to see what they cost)")
	cmd.Flags().StringVar(&opts.DataDir, "bench-data", "", "keep the benchmark's data here (default: a temporary directory)")
	cmd.Flags().StringVar(&opts.Postgres, "postgres", "", "the store: this empty PostgreSQL database or schema (DSN) instead of SQLite; one holding canvases, profiles, runs or events is refused")
	cmd.Flags().BoolVar(&verbose, "verbose", false, "show warnings from the stack")
	profiles.addFlags(cmd)
	return cmd
}

func (c *cli) benchEventsCmd() *cobra.Command {
	var opts bench.EventOptions
	var target bench.RemoteOptions
	var verbose bool
	var profiles benchProfiles
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Event → outbox latency at a steady rate of POST /v1/track calls",
		Long: `Start the embedded stack with a canvas triggered by the event bench_ping whose first step writes to the
outbox, send --rate /v1/track calls per second (each for a new user) for --duration, and print the
latency from sending each request to its outbox row: p50, p99 and max.

With --target URL (repeatable: one per worker, events go to them in turn) it loads a running Huabu
instead, e.g. scripts/cluster's workers: it deploys the canvas bench-events through the admin API
(--server, default the first target; --token or $HUABU_TOKEN), posts with --write-key, and reads the
outbox through the admin API. The workers' channels must write to the outbox, and the bench must run on
their host (the outbox row's time is the worker's clock).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Rate <= 0 || opts.Duration <= 0 {
				return userErrorf("--rate and --duration must be positive")
			}
			remote := len(target.Targets) > 0
			if remote && (opts.Postgres != "" || opts.DataDir != "" || opts.NoTraits) {
				return userErrorf("--target loads a running Huabu: --postgres, --bench-data and --no-traits are for the bench's own stack")
			}
			if remote && target.WriteKey == "" {
				return userErrorf("--target needs --write-key (or $HUABU_WRITE_KEY): one of the workers' http.write_keys")
			}
			opts.Out, opts.Log = c.stdout, c.benchLogger(verbose)
			stopProfiles, err := profiles.start()
			if err != nil {
				return err
			}
			if remote {
				target.Admin, target.Token = c.apiAddr, c.bearerToken()
				if target.Admin != "" && !strings.Contains(target.Admin, "://") {
					target.Admin = "http://" + target.Admin
				}
				return errors.Join(bench.EventsRemote(cmd.Context(), opts, target), stopProfiles())
			}
			return errors.Join(bench.Events(cmd.Context(), opts), stopProfiles())
		},
	}
	cmd.Flags().StringArrayVar(&target.Targets, "target", nil, "load this running Huabu's public HTTP server (base URL, e.g. http://127.0.0.1:9001; repeat for each worker) instead of starting a stack")
	cmd.Flags().StringVar(&target.WriteKey, "write-key", os.Getenv("HUABU_WRITE_KEY"), "with --target: the write key for /v1 (default: $HUABU_WRITE_KEY)")
	cmd.Flags().IntVar(&opts.Rate, "rate", 500, "events per second")
	cmd.Flags().DurationVar(&opts.Duration, "duration", 60*time.Second, "how long to send")
	cmd.Flags().DurationVar(&opts.Window, "window", 0, "the entry window (triggers.window; default: the config's default)")
	cmd.Flags().BoolVar(&opts.BackPressure, "back-pressure", false, "close a canvas's entry window once its previous run has begun (triggers.back_pressure, ADR 035)")
	cmd.Flags().BoolVar(&opts.NoTraits, "no-traits", false, "leave computed traits, RFM and tags out of the config (to see what they cost)")
	cmd.Flags().StringVar(&opts.DataDir, "bench-data", "", "keep the benchmark's data here (default: a temporary directory)")
	cmd.Flags().StringVar(&opts.Postgres, "postgres", "", "the store: this empty PostgreSQL database or schema (DSN) instead of SQLite; one holding canvases, profiles, runs or events is refused")
	cmd.Flags().BoolVar(&verbose, "verbose", false, "show warnings from the stack")
	profiles.addFlags(cmd)
	return cmd
}

// benchProfiles are the profiles a bench writes (--cpuprofile, --memprofile,
// --blockprofile): the evidence docs/performance.md starts from.
type benchProfiles struct{ cpu, mem, block string }

// blockProfileRate samples blocking events: every one of 100 µs or more,
// shorter ones in proportion. Waits that shape latency (a writer
// connection, a lock, a channel) are far longer.
const blockProfileRate = int(100 * time.Microsecond)

func (p *benchProfiles) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&p.cpu, "cpuprofile", "", "write a CPU profile of the whole benchmark here")
	cmd.Flags().StringVar(&p.mem, "memprofile", "", "write an allocation profile of the whole benchmark here (go tool pprof -sample_index=alloc_space)")
	cmd.Flags().StringVar(&p.block, "blockprofile", "", "write a profile of where goroutines waited (channels, locks, the store's writer connection) here")
}

// start begins the CPU profile; stop ends it and writes the allocation
// profile (every allocation since the process started, sampled).
func (p *benchProfiles) start() (stop func() error, err error) {
	var cpu *os.File
	if p.cpu != "" {
		if cpu, err = os.Create(p.cpu); err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(cpu); err != nil {
			cpu.Close()
			return nil, err
		}
	}
	if p.block != "" {
		runtime.SetBlockProfileRate(blockProfileRate)
	}
	return func() error {
		var errs []error
		if cpu != nil {
			pprof.StopCPUProfile()
			errs = append(errs, cpu.Close())
		}
		if p.block != "" {
			f, err := os.Create(p.block)
			if err != nil {
				return errors.Join(append(errs, err)...)
			}
			errs = append(errs, pprof.Lookup("block").WriteTo(f, 0), f.Close())
			runtime.SetBlockProfileRate(0)
		}
		if p.mem != "" {
			f, err := os.Create(p.mem)
			if err != nil {
				return errors.Join(append(errs, err)...)
			}
			errs = append(errs, pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
		}
		return errors.Join(errs...)
	}, nil
}
