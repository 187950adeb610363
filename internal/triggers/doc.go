// Package triggers routes stored events to canvases. An event can start a
// journey (trigger.event), take users out of runs (exit), count as a
// conversion (goal), or wake the users of a cohort waiting for it (wait with
// event): the router records exits, conversions and arrivals in the store
// and signals each affected run once per batch, so a burst of events is a
// handful of signals, never one per event per workflow.
//
// Entries that arrive close together (a configurable window, 200 ms by
// default) start one run for all of them: a burst of 10,000 purchases is a
// few runs, each a cohort, not 10,000 workflows. The windows are written to
// the store before the event feed moves past their events and before their
// runs start (windows.go, ADR 009), so a crash loses and regroups nothing.
//
// The router starts and wakes runs through Runs, a port it declares (ADR
// 030): the app implements it over Temporal, huabu simulate in its test
// environment. The router neither imports the workflows nor Temporal; what
// an answer means (ErrRunStarted: this window's run exists; ErrNoRun: the
// run ended) is decided here.
package triggers
