package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/huabu/huabu/server"
	"github.com/huabu/huabu/store"
)

// The governance commands: approve, audit. They talk to the running
// Huabu's admin API with the caller's token.

func (c *cli) approveCmd() *cobra.Command {
	var plan string
	cmd := &cobra.Command{
		Use:   "approve CANVAS",
		Short: "Approve a canvas version (the current one, or --plan HASH) so its runs may start; needs an approver who is not its author",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.api()
			if err != nil {
				return err
			}
			var out server.Approved
			body := map[string]string{}
			if plan != "" {
				body["plan"] = plan
			}
			if err := api.call(cmd.Context(), "POST", "/api/v1/canvases/"+url.PathEscape(args[0])+"/approve", body, &out); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "%s version %s approved by %s (deployed by %s)", out.Canvas, out.Plan, out.Approver, orDash(out.Author))
			if !out.Current {
				fmt.Fprint(c.stdout, "; it is not the version deployed now")
			}
			fmt.Fprintln(c.stdout)
			return nil
		},
	}
	cmd.Flags().StringVar(&plan, "plan", "", "the plan hash (or its first characters) to approve; default the current version")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c *cli) auditCmd() *cobra.Command {
	var canvas, since, action string
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "The audit log, newest first: who deployed, approved, ran, paused, resumed, stopped, suppressed or forgot what, when, from where",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.api()
			if err != nil {
				return err
			}
			q := url.Values{}
			for k, v := range map[string]string{"canvas": canvas, "since": since, "action": action} {
				if v != "" {
					q.Set(k, v)
				}
			}
			q.Set("limit", strconv.Itoa(limit))
			var out struct {
				Entries []store.AuditEntry `json:"entries"`
			}
			if err := api.call(cmd.Context(), "GET", "/api/v1/audit?"+q.Encode(), nil, &out); err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(c.stdout)
				enc.SetEscapeHTML(false)
				for _, e := range out.Entries {
					if err := enc.Encode(e); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tWHO\tROLE\tFROM\tACTION\tCANVAS\tPLAN\tDETAIL")
			for _, e := range out.Entries {
				detail := string(e.Detail)
				if detail == "{}" {
					detail = ""
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.12s\t%s\n", e.At.Local().Format("2006-01-02 15:04:05"), e.Actor, orDash(e.Role), orDash(e.Remote),
					e.Action, orDash(e.CanvasID), e.PlanHash, detail)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&canvas, "canvas", "", "only this canvas")
	cmd.Flags().StringVar(&since, "since", "", "only entries since an RFC 3339 time or a duration back from now (24h, 7d)")
	cmd.Flags().StringVar(&action, "action", "", "only this action (deploy, approve, run, pause, resume, stop, suppress, unsuppress, forget)")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON lines")
	return cmd
}
