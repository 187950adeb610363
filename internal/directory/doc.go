// Package directory copies WeCom's address book and customer lists into the
// store: the staff directory (grid, leader) staff_task steps assign by, and
// the contact book (who may message whom) sends are screened against. The
// worker runs it on a schedule (the SyncWeComDirectory workflow) and
// `huabu staff sync` on demand; WeCom callbacks keep both current between
// syncs.
//
// It is its own package so the engine (activities, workflows) depends on
// the sync, not on the ingestion of events and imports.
package directory
