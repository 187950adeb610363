// Package workflows holds Huabu's one generic interpreter workflow. It runs
// a compiled Plan (pinned by hash) for cohorts of users: it never contains
// campaign logic, only the rules of each step kind.
//
// State is a list of tokens, each a cohort at a step: runnable now, asleep
// until a wake time (waits), or awaiting an event until a deadline. Step
// executions run concurrently (bounded), each as a few activities over the
// cohort's pages. When Temporal suggests continue-as-new, the workflow stops
// starting steps, lets the running ones finish, and continues with its
// tokens, so a run of any length and size keeps a short history.
//
// Determinism: no map iteration, no wall clock, no randomness; replay tests
// over recorded histories live in testdata/.
package workflows
