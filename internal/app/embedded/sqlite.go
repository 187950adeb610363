package embedded

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"

	"go.temporal.io/server/common/config"
	sqliteschema "go.temporal.io/server/schema/sqlite"
)

// maxConns is the size of the SQLite connection pool that all Temporal
// services share. It stays 1: SQLite has one writer at a time anyway, and
// with 4 connections (WAL) Temporal's read-then-write transactions failed
// with SQLITE_BUSY ("database is locked (517)") and throughput fell by 3x.
const maxConns = 1

// lastSchemaObject is the last object the v3 schema creates. Its presence
// tells a complete schema from one cut short by a crash during first start.
const lastSchemaObject = "executions_visibility_au"

// fileConnectAttributes are the sqlite plugin's connect attributes for a
// database file. Keys other than SQLite URI parameters become PRAGMAs.
func fileConnectAttributes() map[string]string {
	return map[string]string{
		"mode": "rwc", // create the file if missing
		// WAL lets readers run while a write commits and makes commits an
		// append, which is what a write-heavy workflow engine needs.
		"journal_mode": "wal",
		// With WAL, NORMAL is still crash-safe for the process; only an OS
		// crash or power loss can lose the last commits. FULL would fsync
		// every workflow state change.
		"synchronous": "normal",
		// Wait for a lock instead of failing with SQLITE_BUSY, e.g. while
		// ensureSchema's inspection connection is still closing.
		"busy_timeout": "10000",
	}
}

// ensureSchema creates the Temporal schema in conf's database file when the
// file is new or empty. A schema left half-created by a crash during the very
// first start holds no data, so it is discarded and created again.
func ensureSchema(conf *config.SQL) error {
	path := conf.DatabaseName
	state, err := schemaState(path)
	if err != nil {
		return err
	}
	switch state {
	case schemaComplete:
		return nil
	case schemaPartial:
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Remove(path + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove incomplete database %s: %w", path, err)
			}
		}
	}
	if err := sqliteschema.SetupSchema(conf); err != nil {
		return fmt.Errorf("create schema in %s: %w", path, err)
	}
	return nil
}

type schemaStatus int

const (
	schemaMissing schemaStatus = iota
	schemaPartial
	schemaComplete
)

func schemaState(path string) (schemaStatus, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return schemaMissing, nil
	} else if err != nil {
		return 0, fmt.Errorf("database %s: %w", path, err)
	}
	// A short-lived connection of our own (the "sqlite" driver is modernc's,
	// registered by the server's sqlite plugin): the plugin's connections
	// cannot be closed once opened, so inspect outside of them.
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout=10000")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return 0, fmt.Errorf("open database %s: %w", path, err)
	}
	defer db.Close()
	var objects, last int
	err = db.QueryRow(`SELECT count(*), count(CASE WHEN name = ? THEN 1 END) FROM sqlite_master`,
		lastSchemaObject).Scan(&objects, &last)
	if err != nil {
		return 0, fmt.Errorf("inspect database %s: %w", path, err)
	}
	switch {
	case last > 0:
		return schemaComplete, nil
	case objects == 0:
		return schemaMissing, nil
	default:
		return schemaPartial, nil
	}
}
