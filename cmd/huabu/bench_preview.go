package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/huabu/huabu/internal/bench"
)

func (c *cli) benchEstimateCmd() *cobra.Command {
	var opts bench.EstimateOptions
	var profiles benchProfiles
	cmd := &cobra.Command{
		Use:   "estimate",
		Short: "Audience estimate over N profiles: wall time (median of --runs) and how close it came to the exact count",
		Long: `Seed --users profiles shaped like the example ones (kept in --bench-data and reused when it has them),
estimate the win-back canvas's audience --runs times with the default time budget, print each wall
time and the median, then count exactly once and print how far the estimate was from it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Users <= 0 {
				return userErrorf("--users must be at least 1")
			}
			opts.Out = c.stdout
			stopProfiles, err := profiles.start()
			if err != nil {
				return err
			}
			_, err = bench.Estimate(cmd.Context(), opts)
			return errors.Join(err, stopProfiles())
		},
	}
	cmd.Flags().IntVar(&opts.Users, "users", 1000000, "profiles in the store")
	cmd.Flags().IntVar(&opts.Runs, "runs", 3, "estimates to time")
	cmd.Flags().StringVar(&opts.DataDir, "bench-data", "", "keep the seeded store here and reuse it (default: a temporary directory)")
	profiles.addFlags(cmd)
	return cmd
}

func (c *cli) benchSimulateCmd() *cobra.Command {
	var opts bench.SimulateOptions
	var profiles benchProfiles
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Simulation of an example canvas over N generated users and D days: wall time, median of --runs",
		Long: `Generate --users profiles shaped like the example ones (every fifth a lapsed big spender), a year of
purchase history and the --days of events a live period has (coupons used, purchases, app opens),
simulate an example canvas (--canvas, default winback-dormant) over them --runs times, and print
each wall time and the median.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Users <= 0 || opts.Days <= 0 {
				return userErrorf("--users and --days must be at least 1")
			}
			opts.Out = c.stdout
			stopProfiles, err := profiles.start()
			if err != nil {
				return err
			}
			_, err = bench.Simulate(cmd.Context(), opts)
			return errors.Join(err, stopProfiles())
		},
	}
	cmd.Flags().IntVar(&opts.Users, "users", 10000, "users")
	cmd.Flags().IntVar(&opts.Days, "days", 14, "days simulated")
	cmd.Flags().StringVar(&opts.Canvas, "canvas", "winback-dormant", "example canvas to simulate")
	cmd.Flags().IntVar(&opts.Runs, "runs", 3, "simulations to time")
	profiles.addFlags(cmd)
	return cmd
}
