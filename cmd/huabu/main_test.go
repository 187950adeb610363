package main

import (
	"os"
	"testing"
)

// TestMain lets tests run this test binary as the huabu CLI in a child
// process (HUABU_AS_CLI=1), so a test can SIGKILL a real `huabu dev`.
func TestMain(m *testing.M) {
	if os.Getenv("HUABU_AS_CLI") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
