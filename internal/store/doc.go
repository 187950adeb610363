// Package store keeps Huabu's durable data: profiles, canvases and plan
// versions, runs, cohorts and their member pages, the delivery ledger, the
// outbox, exits, entries and conversions.
//
// Cohort members are stored as pages: each page holds up to PageSize member
// ids, delta- and varint-packed into one blob, so a million-member cohort is
// about a thousand rows, written and read in pages by activities that keep
// a cursor. Profiles have a dense integer uid for that purpose besides their
// external user id.
//
// The delivery ledger has one row per (run, step, recipient). A row is
// written as pending before a provider is called and settled after, which
// is how a retried activity avoids sending twice.
//
// SQLite is the default (pure Go, WAL, one writer connection and a pool of
// readers); PostgreSQL runs the same code (ADR 021). Callers declare the
// small interfaces they need in their own package (activities.LedgerStore,
// activities.CohortStore, triggers.Store, …; ADR 024).
package store
