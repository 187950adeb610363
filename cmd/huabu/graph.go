package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func (c *cli) graphCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "graph FILE",
		Short: "Draw a canvas as a mermaid or Graphviz dot diagram",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "mermaid" && format != "dot" {
				return userErrorf("--format %q: use mermaid or dot", format)
			}
			_, comp, err := c.compiler()
			if err != nil {
				return err
			}
			plan, problems := comp.CompileFile(args[0])
			if plan == nil {
				for _, p := range problems {
					fmt.Fprintln(c.stderr, p.String())
				}
				return silentFailure
			}
			if format == "dot" {
				fmt.Fprint(c.stdout, plan.Dot())
			} else {
				fmt.Fprint(c.stdout, plan.Mermaid())
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "mermaid", "mermaid or dot")
	return cmd
}
