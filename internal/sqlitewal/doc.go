// Package sqlitewal copies a SQLite database's write-ahead log into the
// database file in the background, from a connection that does not write.
//
// SQLite otherwise checkpoints inside whichever commit pushes the WAL past
// wal_autocheckpoint pages: that commit copies the pages and waits for two
// fsyncs, and every writer queued behind it waits too. Huabu's SQLite store
// has one writer connection, so it opens its database with a high
// wal_autocheckpoint (a bound, should the checkpointer fall behind) and runs
// a Checkpointer: a passive checkpoint takes no write lock, so commits go on
// while the WAL is copied and synced. (The embedded Temporal server's
// database was tried with one too and measured no better: ADR 049.)
package sqlitewal
