package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/huabu/huabu/internal/server"
	"github.com/huabu/huabu/internal/store"
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

func (c *cli) suppressCmd() *cobra.Command {
	var channel, reason string
	var addresses, asJSON bool
	var limit int
	cmd := &cobra.Command{
		Use:   "suppress add|remove|list [USER...]",
		Short: "The suppression list: users (or, with --address, phone numbers, emails, WeCom external userids) who get no marketing, on one channel or all",
		Long: `add and remove take user ids (or addresses with --address) and --channel (default: every
channel; remove --channel '*' removes every entry of them). list shows the newest entries, or
those of the users named. Marketing sends to suppressed users are reported as suppressed with
reason unsubscribed; transactional canvases are exempt. Replies such as TD or 退订 (Aliyun, Tencent),
customers deleting their staff member on WeCom and providers' "unsubscribed" refusals add entries
on their own.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			op, subjects := args[0], args[1:]
			api, err := c.api()
			if err != nil {
				return err
			}
			req := server.SuppressRequest{Channel: channel, Reason: reason}
			if addresses {
				req.Addresses = subjects
			} else {
				req.Users = subjects
			}
			switch op {
			case "add", "remove":
				if len(subjects) == 0 {
					return userErrorf("suppress %s: name at least one user (or address with --address)", op)
				}
				var out server.SuppressOutcome
				path := "/api/v1/suppressions"
				if op == "remove" {
					path += "/remove"
				}
				if err := api.call(cmd.Context(), "POST", path, req, &out); err != nil {
					return err
				}
				if op == "add" {
					fmt.Fprintf(c.stdout, "%d added (%d already on the list)\n", out.Added, len(subjects)-out.Added)
				} else {
					fmt.Fprintf(c.stdout, "%d removed\n", out.Removed)
				}
				return nil
			case "list":
				q := url.Values{}
				key := "user"
				if addresses {
					key = "address"
				}
				for _, s := range subjects {
					q.Add(key, s)
				}
				if channel != "" {
					q.Set("channel", channel)
				}
				q.Set("limit", strconv.Itoa(limit))
				var out struct {
					Suppressions []store.Suppression `json:"suppressions"`
				}
				if err := api.call(cmd.Context(), "GET", "/api/v1/suppressions?"+q.Encode(), nil, &out); err != nil {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(c.stdout)
					enc.SetEscapeHTML(false)
					for _, e := range out.Suppressions {
						if err := enc.Encode(e); err != nil {
							return err
						}
					}
					return nil
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "SINCE\tWHO\tCHANNEL\tSOURCE\tREASON")
				for _, e := range out.Suppressions {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.At.Local().Format("2006-01-02 15:04:05"), e.Display, channelName(e.Channel), e.Source, e.Reason)
				}
				return tw.Flush()
			}
			return userErrorf("suppress %q: use add, remove or list", op)
		},
	}
	cmd.Flags().StringVar(&channel, "channel", "", "one channel (sms, wecom.customer, push, email, ...); default every channel")
	cmd.Flags().StringVar(&reason, "reason", "", "add: why (kept with the entry)")
	cmd.Flags().BoolVar(&addresses, "address", false, "the arguments are addresses (phone numbers, emails, WeCom external userids), not user ids")
	cmd.Flags().IntVar(&limit, "limit", 100, "list: at most this many")
	cmd.Flags().BoolVar(&asJSON, "json", false, "list: print JSON lines")
	return cmd
}

func channelName(ch string) string {
	if ch == "" {
		return "all"
	}
	return ch
}

func (c *cli) forgetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "forget USER...",
		Short: "PIPL deletion: remove users' profiles, events, message contents and identifiers; reports keep anonymous counts, opt-outs stay as address hashes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.api()
			if err != nil {
				return err
			}
			var out store.ForgetResult
			if err := api.call(cmd.Context(), "POST", "/api/v1/users/forget", map[string]any{"users": args}, &out); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "forgot %d user(s): %d events and %d messages deleted, %d opt-out(s) kept as address hashes\n", out.Forgotten, out.Events, out.Messages, out.Kept)
			for _, u := range out.Unknown {
				fmt.Fprintf(c.stdout, "  %s: no such user (already forgotten, or never known)\n", u)
			}
			return nil
		},
	}
}

// controlCmd is huabu pause|resume|stop CANVAS.
func (c *cli) controlCmd(action, short string) *cobra.Command {
	return &cobra.Command{
		Use:   action + " CANVAS",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.api()
			if err != nil {
				return err
			}
			var out server.Controlled
			if err := api.call(cmd.Context(), "POST", "/api/v1/canvases/"+url.PathEscape(args[0])+"/"+action, nil, &out); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "%s: %s (was %s)", out.Canvas, out.State, out.Was)
			if out.Cancelled > 0 {
				fmt.Fprintf(c.stdout, "; %d running run(s) ended", out.Cancelled)
			}
			fmt.Fprintln(c.stdout)
			return nil
		},
	}
}
