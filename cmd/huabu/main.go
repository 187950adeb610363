// Command huabu validates, draws, deploys and runs marketing canvases on
// Temporal. Each subcommand lives in its own file; this one only wires them.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
