// Package acceptlog is the ingestion accept log: an append-only,
// checksummed, fsynced file of accepted requests that sits in front of the
// store.
//
// The ingestion API appends each validated request as one record and
// answers 200 once the record is on disk; an applier reads the log in order
// and stores the records in the store, many requests per transaction, with
// the log position it reached committed in the same transaction. A client
// therefore waits for one sequential write and an fdatasync shared by every
// request that arrived meanwhile (group commit), not for the store's indexes,
// and a burst is absorbed by the disk rather than by memory: nothing
// accepted is lost if the process dies, and the applier resumes from the
// committed position on the next start.
//
// The log is a directory of segment files (NNNNNNNNNNNNNNNN.log, 64 MiB by
// default). A record is framed as a 4-byte little-endian length, a 4-byte
// CRC-32C of the payload, then the payload. On open, a torn record at the end
// of the newest segment (a crash during a write that was never acknowledged)
// is cut off. Segments wholly before the applied position are deleted. A
// LOCK file (flock) keeps a second process from appending to the same log.
package acceptlog
