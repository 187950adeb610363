// Package simulate runs a canvas ahead of time, in virtual time, and says
// what each user would experience: `huabu simulate`.
//
// It is the engine itself, not a model of it. The interpreter workflow and
// the activities the worker registers run in Temporal's test environment
// (go.temporal.io/sdk/testsuite), whose clock jumps from timer to timer, so
// two weeks take seconds. They run over a scratch store — a temporary
// SQLite database seeded from profile, staff and event files (or copied
// from the live store, read-only) — with every channel replaced by the
// outbox, so messages are rendered and recorded, never sent. The
// deployment's policy applies as configured: quiet hours delay, caps and
// suppressions hold back. Every clock — the store's, the activities', the
// router's, the conditions' now() — reads the test environment's.
//
// A small driver workflow stands in for what surrounds a run in a live
// deployment: it starts a run at each firing of a schedule (or once, for a
// manual canvas), and replays the timestamped events at their virtual
// times through the same path a live event takes: stored, computed traits
// recomputed, then routed by the engine's own router (triggers), whose
// starts and signals the driver carries out as child workflows and
// signals. So event triggers, waits for an event, exits and goals behave
// as they do live.
//
// Afterwards the paths are read back from the scratch store (who entered
// which step, the delivery ledger, the outbox, exits, arrivals,
// conversions), with the virtual time each cohort entered each step.
package simulate
