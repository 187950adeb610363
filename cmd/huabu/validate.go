package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/preview"
	"github.com/huabu/huabu/internal/server"
)

func (c *cli) validateCmd() *cobra.Command {
	var asJSON bool
	var previewUsers []string
	cmd := &cobra.Command{
		Use:   "validate [PATH...]",
		Short: "Check canvas files or directories; print every problem as FILE:LINE:COL: message",
		Long: `Check canvas files or directories (default: the config's canvases directory).
Every problem is printed as FILE:LINE:COL: severity: path: message, all of them.
Exit status 1 when any problem is an error; warnings alone exit 0.

--preview USER (repeatable) also renders every message of each canvas without errors for those
users, as a run would (their profiles, owners, templates, opt-outs): it asks the running Huabu,
which holds the profiles. Recipients are masked.`,
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
			var previews []server.PreviewResult
			if len(previewUsers) > 0 {
				if previews, err = c.previewFiles(cmd.Context(), src, files, previewUsers); err != nil {
					return err
				}
			}
			if asJSON {
				out := struct {
					Files    int                    `json:"files"`
					Errors   int                    `json:"errors"`
					Warnings int                    `json:"warnings"`
					Problems canvases.Problems      `json:"problems"`
					Previews []server.PreviewResult `json:"previews,omitempty"`
				}{Files: len(files), Problems: problems, Previews: previews}
				if out.Problems == nil {
					out.Problems = canvases.Problems{}
				}
				out.Errors = len(problems.Errors())
				out.Warnings = len(problems) - out.Errors
				enc := json.NewEncoder(c.stdout)
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false)
				if err := enc.Encode(out); err != nil {
					return err
				}
			} else {
				for _, p := range problems {
					fmt.Fprintln(c.stdout, p.String())
				}
				for i, p := range previews {
					if i > 0 || len(problems) > 0 {
						fmt.Fprintln(c.stdout)
					}
					fmt.Fprintf(c.stdout, "%s (plan %s):\n", p.Canvas, shortHash(p.Plan))
					if err := preview.WriteText(c.stdout, p.Messages); err != nil {
						return err
					}
				}
			}
			if problems.HasErrors() {
				return silentFailure
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print problems as JSON")
	cmd.Flags().StringSliceVar(&previewUsers, "preview", nil, "render every message for this user (repeatable; asks the running Huabu)")
	return cmd
}

// previewFiles asks the running Huabu to render the messages of each file
// that compiled for the users.
func (c *cli) previewFiles(ctx context.Context, src canvases.Source, files []canvases.File, users []string) ([]server.PreviewResult, error) {
	api, err := c.api()
	if err != nil {
		return nil, err
	}
	var out []server.PreviewResult
	for _, f := range files {
		if f.Plan == nil {
			continue
		}
		data, err := src.ReadFile(f.Path)
		if err != nil {
			return nil, err
		}
		var res server.PreviewResult
		req := server.PreviewRequest{File: filepath.Base(f.Path), Source: string(data), Users: users}
		if err := api.call(ctx, "POST", "/api/v1/preview", req, &res); err != nil {
			return nil, err
		}
		out = append(out, res)
	}
	return out, nil
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
