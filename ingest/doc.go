// Package ingest turns what apps and operators send — Segment identify and
// track payloads, CSV exports, staff directories — into store writes. It
// checks every value against the profile schema and reports rejects with
// their line numbers (files) or the field at fault (HTTP), and it writes in
// large batches so a million-row import takes seconds.
package ingest
