package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"
)

const usage = `usage:
  clustertool ports N                 N free loopback TCP ports, one a line
  clustertool namespace ADDRESS NAME  register NAME on the Temporal frontend at ADDRESS (waits for it, 3 min)
  clustertool healthz URL             wait until GET URL answers 200 (3 min)
The waits end early when CLUSTERTOOL_WATCH_PID is set and that process exits.`

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "clustertool:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 2 {
		return errors.New(usage)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	switch {
	case args[0] == "ports":
		n, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		return ports(n)
	case args[0] == "namespace" && len(args) == 3:
		return namespace(ctx, args[1], args[2])
	case args[0] == "healthz":
		return healthz(ctx, args[1])
	}
	return errors.New(usage)
}

// ports holds N listeners open at once (so they differ) and prints them.
// They are below 32768: Temporal stores membership ports as a smallint, and
// the kernel's ephemeral range (where port 0 lands) starts above it.
func ports(n int) error {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for tries := 0; len(lns) < n; tries++ {
		if tries > 1000 {
			return errors.New("no free ports between 20000 and 32767")
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12768)))
		if err != nil {
			continue
		}
		lns = append(lns, ln)
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	}
	return nil
}

// alive fails once the process CLUSTERTOOL_WATCH_PID names has exited, so a
// wait for a server that died ends at once.
func alive() error {
	pid := os.Getenv("CLUSTERTOOL_WATCH_PID")
	if pid == "" {
		return nil
	}
	if _, err := os.Stat("/proc/" + pid); err != nil {
		return fmt.Errorf("process %s exited", pid)
	}
	return nil
}

// namespace registers the namespace unless it exists, then waits until the
// frontend serves it (its namespace cache refreshes every few seconds).
func namespace(ctx context.Context, address, name string) error {
	var c client.Client
	var err error
	for {
		c, err = client.DialContext(ctx, client.Options{HostPort: address, Namespace: name, Logger: quiet{}})
		if err == nil {
			break
		}
		if ctx.Err() != nil || alive() != nil {
			return fmt.Errorf("temporal at %s: %w", address, errors.Join(err, alive()))
		}
		time.Sleep(time.Second)
	}
	defer c.Close()
	for {
		_, err = c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace:                        name,
			WorkflowExecutionRetentionPeriod: durationpb.New(72 * time.Hour),
		})
		var exists *serviceerror.NamespaceAlreadyExists
		if err == nil || errors.As(err, &exists) {
			break
		}
		if ctx.Err() != nil || alive() != nil {
			return fmt.Errorf("register namespace %s: %w", name, errors.Join(err, alive()))
		}
		time.Sleep(time.Second)
	}
	for {
		_, err = c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: name})
		if err == nil {
			// Describe reads the database; a workflow call needs the
			// frontend's cache to know the namespace.
			_, err = c.WorkflowService().ListOpenWorkflowExecutions(ctx, &workflowservice.ListOpenWorkflowExecutionsRequest{Namespace: name, MaximumPageSize: 1})
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || alive() != nil {
			return fmt.Errorf("namespace %s not served: %w", name, errors.Join(err, alive()))
		}
		time.Sleep(time.Second)
	}
}

func healthz(ctx context.Context, url string) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if ctx.Err() != nil || alive() != nil {
			return fmt.Errorf("%s: %w", url, errors.Join(err, alive()))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// quiet drops the SDK's logs.
type quiet struct{}

func (quiet) Debug(string, ...any) {}
func (quiet) Info(string, ...any)  {}
func (quiet) Warn(string, ...any)  {}
func (quiet) Error(string, ...any) {}
