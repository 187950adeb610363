package main

import (
	"github.com/spf13/cobra"

	"github.com/huabu/huabu/internal/canvases"
)

func (c *cli) schemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of the canvas format (for yaml-language-server and editors)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := c.stdout.Write(canvases.JSONSchema())
			return err
		},
	}
}
