package embedded_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/huabu/huabu/internal/app/embedded"
)

func Example() {
	dir, err := os.MkdirTemp("", "huabu-temporal")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Options{DataDir: dir, Namespace: "huabu"})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Stop()

	c, err := client.Dial(client.Options{HostPort: srv.HostPort(), Namespace: srv.Namespace()})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ns, err := c.WorkflowService().DescribeNamespace(ctx,
		&workflowservice.DescribeNamespaceRequest{Namespace: srv.Namespace()})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ns.NamespaceInfo.Name, ns.NamespaceInfo.State)
	// Output: huabu Registered
}
