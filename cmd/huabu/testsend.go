package main

import (
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/huabu/huabu/internal/preview"
	"github.com/huabu/huabu/internal/server"
)

func (c *cli) testSendCmd() *cobra.Command {
	var step string
	var to []string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "test-send CANVAS --step STEP [--to USER...]",
		Short: "Send one step's message, marked [TEST], to test users through the real channel; in no report, cap or quota",
		Long: `Render a push step of a deployed canvas (a draft awaiting approval too) for the given users, or the
config's test_users, and send it through the step's real channel, the text marked "[TEST] " where
the channel shows text (an SMS template's text is fixed by the provider: it goes unmarked). The
send happens outside any run: it is recorded in the audit log (action test-send) and is never
counted in reports, frequency caps or quotas. Opted-out users still get nothing. At most 50 users.
Exit status 1 when a message was not sent.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if step == "" {
				return userErrorf("--step is required: the push step to send")
			}
			api, err := c.api()
			if err != nil {
				return err
			}
			var res server.TestSendResult
			req := server.TestSendRequest{Step: step, To: to}
			if err := api.call(cmd.Context(), "POST", "/api/v1/canvases/"+url.PathEscape(args[0])+"/test-send", req, &res); err != nil {
				return err
			}
			allSent := true
			for _, s := range res.Sent {
				allSent = allSent && s.Outcome == "sent"
			}
			if asJSON {
				enc := json.NewEncoder(c.stdout)
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false)
				if err := enc.Encode(res); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(c.stdout, "test send of %s step %s (plan %s):\n", res.Canvas, res.Step, shortHash(res.Plan))
				for _, s := range res.Sent {
					line := fmt.Sprintf("  %s  %s", s.User, s.Channel)
					if s.To != "" {
						line += " → " + s.To
					}
					line += "  " + s.Outcome
					if s.Detail != "" {
						line += " (" + s.Detail + ")"
					}
					if s.Outcome == "sent" && !s.Marked {
						line += "  (unmarked: the channel's text is fixed by a template)"
					}
					fmt.Fprintln(c.stdout, line)
					for _, l := range preview.MessageLines(s.Message.Message) {
						fmt.Fprintf(c.stdout, "      %s\n", l)
					}
				}
			}
			if !allSent {
				return silentFailure
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&step, "step", "", "the push step whose message to send")
	cmd.Flags().StringSliceVar(&to, "to", nil, "user id to send to (repeatable; default: the config's test_users)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
