// Command huabu validates, draws, deploys and runs marketing canvases on
// Temporal. Each subcommand lives in its own file; this one only wires them.
package main

import (
	"os"

	"github.com/huabu/huabu/internal/gcpolicy"
)

func main() {
	c := &cli{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, gc: gcpolicy.Apply(os.Getenv, gcpolicy.CgroupLimit)}
	os.Exit(c.run(os.Args[1:]))
}
