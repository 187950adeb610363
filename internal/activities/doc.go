// Package activities is what the interpreter workflow calls: evaluate an
// audience into an entry cohort, send a step's message to a range of cohort
// pages through the delivery ledger, partition a cohort for a branch, split
// or time-of-day wait, tag profiles, record exits and finish runs
// (Activities); and the staff_task loop's activities with the WeCom
// directory sync (StaffActivities, staff_*.go, one file per activity).
//
// Every activity works on cohort pages by number and heartbeats the last page
// it finished, so a retried attempt resumes where the last one stopped, and
// writes only idempotent rows (pages by number, ledger rows by run, step and
// recipient), so a retry never duplicates an effect.
//
// The store interfaces are declared here, by their consumer, each beside
// the activities that use it (PlanStore, RunStore, ProfileStore,
// CohortStore, WaitStore, LedgerStore, TouchStore, SuppressionStore,
// OutboxStore; Store is their union; StaffTaskStore is the staff loop's),
// and so is ChannelSet; internal/app wires the store and the configured
// channels in.
package activities
