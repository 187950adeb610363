package app

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/huabu/huabu/internal/triggers"
	"github.com/huabu/huabu/internal/workflows"
)

// temporalRuns is the router's triggers.Runs over Temporal: an entry
// window's run is the interpreter workflow (workflows.RunName) started
// under the window's workflow id; arrivals wake it with its arrivals
// signal.
type temporalRuns struct {
	client    temporalStarter
	taskQueue string
}

// temporalStarter is the part of client.Client temporalRuns calls.
type temporalStarter interface {
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow interface{}, args ...interface{}) (client.WorkflowRun, error)
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg interface{}) error
}

func (r temporalRuns) StartEventRun(ctx context.Context, run triggers.EventRun) error {
	_, err := r.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: run.WorkflowID, TaskQueue: r.taskQueue,
		// A finished run keeps its id: starting it again must not run it twice.
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		// Say so (the SDK would hand back the existing run without an
		// error): the router is told ErrRunStarted, as Runs promises.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		// The router runs beside a worker of the task queue on the same
		// client: the server hands the run's first workflow task back in
		// the start's answer instead of through its transfer queue and
		// matching, where a busy server retried it after seconds (ADR 045).
		EnableEagerStart: true,
	}, workflows.RunName, workflows.EventRunInput(run.CanvasID, run.PlanHash, run.Users))
	return startError(err)
}

func (r temporalRuns) SignalArrivals(ctx context.Context, workflowID string) error {
	return signalError(r.client.SignalWorkflow(ctx, workflowID, "", workflows.ArrivalsSignal, nil))
}

// startError says in the router's terms that Temporal already has a run
// under the id (running or finished: the reuse policy rejects both).
func startError(err error) error {
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &already) {
		return fmt.Errorf("%w: %w", triggers.ErrRunStarted, err)
	}
	return err
}

// signalError says in the router's terms that Temporal has no running
// workflow under the id (a closed workflow cannot be signalled either).
func signalError(err error) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("%w: %w", triggers.ErrNoRun, err)
	}
	return err
}
