package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/huabu/huabu/internal/estimate"
)

func (c *cli) estimateCmd() *cobra.Command {
	var exact, asJSON bool
	cmd := &cobra.Command{
		Use:   "estimate CANVAS",
		Short: "How many would enter, how many can be reached on each channel, how many the policy holds back now",
		Long: `Estimate a canvas against the running Huabu's profiles: how many match the audience and would
enter (the re-entry rule applied), for an event trigger how many sent the event in the last 7 days
and would have entered, how many have an address on each channel the canvas uses, how many the
frequency caps, suppressions and quiet hours hold back right now, and ten of the users.

CANVAS is a deployed canvas's id or a canvas file (estimated without deploying it). A large store
is sampled to answer within a second: counts are then scaled up and marked ≈ with a 95% margin of
error; --exact counts every profile.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.api()
			if err != nil {
				return err
			}
			q := ""
			if exact {
				q = "?exact=true"
			}
			var res estimate.Result
			if src, err := os.ReadFile(args[0]); err == nil {
				// Checked here first, as deploy does: every problem, positioned.
				_, comp, err := c.compiler()
				if err != nil {
					return err
				}
				if _, problems := comp.Compile(args[0], src); len(problems) > 0 {
					for _, p := range problems {
						fmt.Fprintln(c.stderr, p.String())
					}
					if problems.HasErrors() {
						return silentFailure
					}
				}
				body := map[string]string{"file": filepath.Base(args[0]), "source": string(src)}
				if err := api.call(cmd.Context(), "POST", "/api/v1/estimate"+q, body, &res); err != nil {
					return err
				}
			} else if err := api.call(cmd.Context(), "GET", "/api/v1/canvases/"+url.PathEscape(args[0])+"/estimate"+q, nil, &res); err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(c.stdout)
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false)
				return enc.Encode(res)
			}
			return res.WriteText(c.stdout)
		},
	}
	cmd.Flags().BoolVar(&exact, "exact", false, "evaluate every profile, however long it takes")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
