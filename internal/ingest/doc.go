// Package ingest turns what apps and operators send — Segment identify and
// track payloads, CSV exports, staff directories — into store writes. It
// checks every value against the profile schema and reports rejects with
// their line numbers (files) or the field at fault (HTTP), and it writes in
// large batches so a million-row import takes seconds.
//
// In the engine the HTTP API writes through an Accepter: a validated request
// is appended to the accept log (package acceptlog) and answered once it is
// fsynced, and the Applier stores the log's records in order, in groups,
// with the log position in the same transaction (ADR 006).
package ingest
