package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/huabu/huabu/canvases"
)

func (c *cli) validateCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "validate [PATH...]",
		Short: "Check canvas files or directories; print every problem as FILE:LINE:COL: message",
		Long: `Check canvas files or directories (default: the config's canvases directory).
Every problem is printed as FILE:LINE:COL: severity: path: message, all of them.
Exit status 1 when any problem is an error; warnings alone exit 0.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, comp, err := c.compiler()
			if err != nil {
				return err
			}
			var src canvases.Source = canvases.Disk{}
			if len(args) == 0 {
				var dir string
				src, dir = canvasSource(cfg)
				args = []string{dir}
			}
			files, problems, err := comp.CompileAll(src, args)
			if err != nil {
				return userError{err}
			}
			problems.Sort()
			if asJSON {
				out := struct {
					Files    int               `json:"files"`
					Errors   int               `json:"errors"`
					Warnings int               `json:"warnings"`
					Problems canvases.Problems `json:"problems"`
				}{Files: len(files), Problems: problems}
				if out.Problems == nil {
					out.Problems = canvases.Problems{}
				}
				out.Errors = len(problems.Errors())
				out.Warnings = len(problems) - out.Errors
				enc := json.NewEncoder(c.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(out); err != nil {
					return err
				}
			} else {
				for _, p := range problems {
					fmt.Fprintln(c.stdout, p.String())
				}
			}
			if problems.HasErrors() {
				return silentFailure
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print problems as JSON")
	return cmd
}
