package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/huabu/huabu/internal/app"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/simulate"
)

func (c *cli) simulateCmd() *cobra.Command {
	var profiles, staff, from, user string
	var events []string
	var days int
	var period time.Duration
	var asJSON bool
	var show int
	cmd := &cobra.Command{
		Use:   "simulate CANVAS|FILE",
		Short: "Run a canvas ahead of time in virtual time: the funnel, and each user's path and messages; sends nothing",
		Long: `Run a canvas — a file, or the id of a canvas in the config's canvases directory — ahead of time with
Huabu's own interpreter and activities in Temporal's test environment, where virtual time jumps from
timer to timer, over a scratch copy: profiles from --profiles (and the staff directory from --staff),
or, without --profiles, a read-only copy of the store under --data. Every channel records instead of
sending; the config's policy applies (quiet hours delay, caps and suppressions hold back).

A scheduled canvas runs at each of its firings in the period, a manual one once at --from, an
event-triggered one when its events come. --events gives timestamped track events (JSONL, as
'huabu import events' reads them): those before --from are history (computed traits, RFM), those
in the period are replayed at their times through the engine's router — event triggers, waits for
an event, exits and goals.

Prints the funnel per step and the paths of the first --show users; --user U prints one user's
path; --json prints {"steps": {...}, "users": {...}} for tools (see CONTRACT.md).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			file, src, err := canvasSourceOf(cfg, args[0])
			if err != nil {
				return err
			}
			opts := simulate.Options{Config: cfg, File: file, Source: src, For: period}
			if days > 0 {
				opts.For = time.Duration(days) * 24 * time.Hour
			}
			if opts.For <= 0 {
				return userErrorf("--days must be at least 1")
			}
			if from != "" {
				if opts.From, err = time.Parse(time.RFC3339, from); err != nil {
					return userErrorf("--from %q: not an RFC 3339 time like 2026-11-23T00:00:00+08:00", from)
				}
			}
			var closers []io.Closer
			defer func() {
				for _, f := range closers {
					f.Close()
				}
			}()
			open := func(flag, path string) (io.Reader, error) {
				f, err := os.Open(path)
				if err != nil {
					return nil, userErrorf("--%s: %v", flag, err)
				}
				closers = append(closers, f)
				return f, nil
			}
			if profiles != "" {
				if opts.Profiles, err = open("profiles", profiles); err != nil {
					return err
				}
				if staff != "" {
					if opts.Staff, err = open("staff", staff); err != nil {
						return err
					}
				}
			} else {
				if staff != "" {
					return userErrorf("--staff goes with --profiles (without them the store's staff directory is used)")
				}
				if cfg.Store.Driver == "postgres" {
					return userErrorf("simulate copies a SQLite store; with store.driver postgres pass --profiles (and --staff)")
				}
				opts.Store = app.StorePath(cfg, c.dataDir)
			}
			var readers []io.Reader
			for _, e := range events {
				r, err := open("events", e)
				if err != nil {
					return err
				}
				readers = append(readers, r)
			}
			if len(readers) > 0 {
				opts.Events = io.MultiReader(joinLines(readers)...)
			}
			res, err := simulate.Run(cmd.Context(), opts)
			var problems canvases.Problems
			switch {
			case errors.As(err, &problems):
				return problems // printed FILE:LINE:COL, one per line
			case errors.Is(err, simulate.ErrInput):
				return userError{err}
			case err != nil:
				return err
			}
			switch {
			case asJSON && user != "":
				return writeJSON(c.stdout, map[string]any{"steps": res.Steps, "users": map[string]any{user: res.Users[user]}})
			case asJSON:
				return writeJSON(c.stdout, res)
			case user != "":
				if err := res.WriteUser(c.stdout, user); err != nil {
					return userError{err}
				}
				return nil
			}
			return res.WriteText(c.stdout, show)
		},
	}
	cmd.Flags().StringVar(&profiles, "profiles", "", "profiles to simulate (identify JSONL or CSV); default: a copy of the store's")
	cmd.Flags().StringVar(&staff, "staff", "", "with --profiles: the staff directory (JSONL or CSV), for owners' names and leaders")
	cmd.Flags().StringArrayVar(&events, "events", nil, "timestamped track events (JSONL); repeat for several files")
	cmd.Flags().StringVar(&from, "from", "", "virtual start, RFC 3339 (default: now)")
	cmd.Flags().IntVar(&days, "days", 0, "days to simulate (default 14)")
	cmd.Flags().DurationVar(&period, "for", 14*24*time.Hour, "how long to simulate, as a Go duration (--days takes precedence)")
	cmd.Flags().StringVar(&user, "user", "", "print only this user's path")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON: {\"steps\": ..., \"users\": ...}")
	cmd.Flags().IntVar(&show, "show", 20, "paths printed with the funnel (-1: all)")
	return cmd
}

// canvasSourceOf reads a canvas file, or finds a canvas by id in the
// config's canvases directory.
func canvasSourceOf(cfg *config.Config, arg string) (string, []byte, error) {
	if src, err := os.ReadFile(arg); err == nil {
		return arg, src, nil
	}
	comp, err := cfg.Compiler()
	if err != nil {
		return "", nil, userError{err}
	}
	from, dir := canvasSource(cfg)
	files, _, err := comp.CompileAll(from, []string{dir})
	if err != nil {
		return "", nil, userError{err}
	}
	for _, f := range files {
		if f.Plan != nil && f.Plan.ID == arg {
			src, err := from.ReadFile(f.Path)
			return f.Path, src, err
		}
	}
	return "", nil, userErrorf("%s is neither a file nor the id of a canvas in %s", arg, dir)
}

// joinLines makes sure one file's last line does not run into the next
// file's first.
func joinLines(rs []io.Reader) []io.Reader {
	out := make([]io.Reader, 0, 2*len(rs))
	for _, r := range rs {
		out = append(out, r, strings.NewReader("\n"))
	}
	return out
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}
