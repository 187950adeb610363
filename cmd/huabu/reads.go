package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/reports"
	"github.com/huabu/huabu/internal/server"
	"github.com/huabu/huabu/internal/store"
)

// The read commands ask the running Huabu (its admin API), never the
// store's files: the store is the server's, wherever it lives.

// zone is where the CLI prints times: --tz, else the config's timezone.
func (c *cli) zone() (*time.Location, error) {
	name := c.tz
	if name == "" {
		cfg, err := c.loadConfig()
		if err != nil {
			return nil, err
		}
		name = cfg.Timezone
	}
	loc, err := canvases.LoadLocation(name)
	if err != nil {
		return nil, userErrorf("--tz: %v", err)
	}
	return loc, nil
}

// printJSON prints the server's answer as it came, indented.
func (c *cli) printJSON(raw json.RawMessage) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := c.stdout.Write(b.Bytes())
	return err
}

func (c *cli) reportCmd() *cobra.Command {
	var runID int64
	var asJSON, staff bool
	var by string
	cmd := &cobra.Command{
		Use:   "report CANVAS",
		Short: "Per-step counts: entered, sent, failed and suppressed by reason, exited, converted; staff tasks",
		Long: `Ask the running Huabu for a canvas's report: per step, how many users entered, were sent
a message (or had it recorded in the outbox, when no provider is configured), failed and were
suppressed by reason, exited and converted; for staff_task steps, the staff tasks created or
recorded. --staff gives staff task completion per staff member (--by grid per grid).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			api, err := c.api()
			if err != nil {
				return err
			}
			loc, err := c.zone()
			if err != nil {
				return err
			}
			q := url.Values{}
			if runID > 0 {
				q.Set("run", strconv.FormatInt(runID, 10))
			}
			if staff || by != "" {
				if by == "" {
					by = reports.ByStaff
				}
				if by != reports.ByStaff && by != reports.ByGrid {
					return userErrorf("--by %q: use staff or grid", by)
				}
				q.Set("by", by)
			}
			path := "/api/v1/canvases/" + url.PathEscape(args[0]) + "/report"
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			var raw json.RawMessage
			if err := api.call(ctx, "GET", path, nil, &raw); err != nil {
				return err
			}
			if asJSON {
				return c.printJSON(raw)
			}
			if q.Has("by") {
				var rep reports.StaffReport
				if err := json.Unmarshal(raw, &rep); err != nil {
					return err
				}
				return rep.WriteText(c.stdout)
			}
			var rep reports.Report
			if err := json.Unmarshal(raw, &rep); err != nil {
				return err
			}
			return rep.WriteTextIn(c.stdout, loc)
		},
	}
	cmd.Flags().Int64Var(&runID, "run", 0, "one run (default: all runs)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON")
	cmd.Flags().BoolVar(&staff, "staff", false, "staff task completion per staff member: tasks, customers, sent, not a friend, over quota, on-time and completion rates")
	cmd.Flags().StringVar(&by, "by", "", "with --staff: staff (default) or grid")
	return cmd
}

func (c *cli) outboxCmd() *cobra.Command {
	var canvas string
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "outbox",
		Short: "Messages the outbox channel recorded (what would have been sent), newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			api, err := c.api()
			if err != nil {
				return err
			}
			loc, err := c.zone()
			if err != nil {
				return err
			}
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if canvas != "" {
				q.Set("canvas", canvas)
			}
			var out struct {
				Messages []store.OutboxMessage `json:"messages"`
			}
			if err := api.call(ctx, "GET", "/api/v1/outbox?"+q.Encode(), nil, &out); err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(c.stdout)
				enc.SetEscapeHTML(false)
				for _, m := range out.Messages {
					if err := enc.Encode(m); err != nil {
						return err
					}
				}
				return nil
			}
			if len(out.Messages) == 0 {
				fmt.Fprintln(c.stdout, "The outbox is empty: no message has been recorded yet.")
				return nil
			}
			for _, m := range out.Messages {
				var msg canvases.Message
				_ = json.Unmarshal(m.Message, &msg)
				fmt.Fprintf(c.stdout, "%s  %-18s %-14s %-14s %-12s %s\n", reports.FormatTime(m.CreatedAt, loc), m.CanvasID+"/"+m.StepID, m.Channel, m.Address, m.UserID, summary(msg))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&canvas, "canvas", "", "only this canvas")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON lines")
	return cmd
}

func (c *cli) runsCmd() *cobra.Command {
	var limit int
	var asJSON bool
	var id string
	cmd := &cobra.Command{
		Use:   "runs [CANVAS]",
		Short: "Recent runs (of one canvas, or all), or with --id one run's progress step by step",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			api, err := c.api()
			if err != nil {
				return err
			}
			loc, err := c.zone()
			if err != nil {
				return err
			}
			if id != "" {
				var raw json.RawMessage
				if err := api.call(ctx, "GET", "/api/v1/runs/"+url.PathEscape(id), nil, &raw); err != nil {
					return err
				}
				if asJSON {
					return c.printJSON(raw)
				}
				var st server.RunStatus
				if err := json.Unmarshal(raw, &st); err != nil {
					return err
				}
				return c.writeRunStatus(st, loc)
			}
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if len(args) == 1 {
				q.Set("canvas", args[0])
			}
			var raw json.RawMessage
			if err := api.call(ctx, "GET", "/api/v1/runs?"+q.Encode(), nil, &raw); err != nil {
				return err
			}
			if asJSON {
				return c.printJSON(raw)
			}
			var out struct {
				Runs []server.RunInfo `json:"runs"`
			}
			if err := json.Unmarshal(raw, &out); err != nil {
				return err
			}
			if len(out.Runs) == 0 {
				fmt.Fprintln(c.stdout, "No runs yet.")
				return nil
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "RUN\tCANVAS\tTRIGGER\tSTATE\tENTERED\tSTARTED\tFINISHED")
			for _, r := range out.Runs {
				finished := "—"
				if r.FinishedAt != nil {
					finished = reports.FormatTime(*r.FinishedAt, loc)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", r.ID, r.Canvas, r.Trigger, r.State, r.Entered, reports.FormatTime(r.StartedAt, loc), finished)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "at most this many")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON")
	cmd.Flags().StringVar(&id, "id", "", "one run, by number or workflow id: its state and every step's progress")
	return cmd
}

// writeRunStatus prints a run's state, what it waits for, and its steps.
func (c *cli) writeRunStatus(st server.RunStatus, loc *time.Location) error {
	head := fmt.Sprintf("run %d of %s: %s", st.RunID, st.Canvas, st.Status)
	if st.StartedAt != nil {
		head += ", started " + reports.FormatTime(*st.StartedAt, loc)
	}
	if st.FinishedAt != nil {
		head += ", finished " + reports.FormatTime(*st.FinishedAt, loc)
	}
	fmt.Fprintln(c.stdout, head)
	c.writeWaits(st.Waiting, loc)
	steps := make([]*reports.StepReport, len(st.Steps))
	for i := range st.Steps {
		steps[i] = st.Steps[i].StepReport
	}
	fmt.Fprintln(c.stdout)
	return reports.WriteSteps(c.stdout, st.Canvas, steps)
}

// waitingCohort is workflows.Waiting as the API sends it.
type waitingCohort struct {
	Step     string    `json:"step"`
	Users    int64     `json:"users"`
	WakeAt   time.Time `json:"wake_at"`
	Deadline time.Time `json:"deadline"`
}

// writeWaits prints who waits for what, and until when.
func (c *cli) writeWaits(waiting any, loc *time.Location) {
	var waits []waitingCohort
	raw, _ := json.Marshal(waiting)
	_ = json.Unmarshal(raw, &waits)
	for _, w := range waits {
		if !w.Deadline.IsZero() {
			fmt.Fprintf(c.stdout, "  %d users at %s wait for an event until %s\n", w.Users, w.Step, reports.FormatTime(w.Deadline, loc))
		} else {
			fmt.Fprintf(c.stdout, "  %d users go on to %s at %s\n", w.Users, w.Step, reports.FormatTime(w.WakeAt, loc))
		}
	}
}

var _ = context.Background
