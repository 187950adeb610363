package workflows

import (
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"
)

func workflowOptions() workflow.RegisterOptions {
	return workflow.RegisterOptions{Name: RunName}
}

// Register adds the interpreter to a worker-like registry.
func Register(r interface {
	RegisterWorkflowWithOptions(w interface{}, options workflow.RegisterOptions)
}) {
	r.RegisterWorkflowWithOptions(Run, workflowOptions())
	r.RegisterWorkflowWithOptions(StaffTaskLoop, StaffTaskLoopOptions())
	r.RegisterWorkflowWithOptions(SyncDirectory, workflow.RegisterOptions{Name: SyncDirectoryName})
}

// dataConverter is the SDK's default, for tests that read payloads.
func dataConverter() interface {
	FromPayloads(payloads *commonpb.Payloads, valuePtrs ...interface{}) error
} {
	return converter.GetDefaultDataConverter()
}
