package sqlitewal

import (
	"database/sql"
	"log/slog"
	"sync"
	"time"
)

// Checkpointer runs `PRAGMA wal_checkpoint(PASSIVE)` on a database at a
// fixed interval until Stop.
type Checkpointer struct {
	db   *sql.DB
	log  *slog.Logger
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu   sync.Mutex
	last Result
}

// Result is what the last checkpoint reported: the frames in the WAL and
// how many of them are in the database file now, or the error it failed
// with and how many checkpoints in a row have failed.
type Result struct {
	LogFrames, Checkpointed int
	Err                     error
	Failures                int
}

// Start checkpoints db every interval. db is any connection or pool on the
// database (a reader pool will do); Stop does not close it. With a logger,
// the first failure of a run of failures is a warning: while checkpoints
// fail, the WAL grows to wal_autocheckpoint pages and commits checkpoint
// inline again.
func Start(db *sql.DB, every time.Duration, log *slog.Logger) *Checkpointer {
	c := &Checkpointer{db: db, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	go c.run(every)
	return c
}

func (c *Checkpointer) run(every time.Duration) {
	defer close(c.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			// A failed checkpoint is tried again at the next tick;
			// SQLite's own bound still holds meanwhile.
			var busy int
			var r Result
			r.Err = c.db.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &r.LogFrames, &r.Checkpointed)
			c.mu.Lock()
			if r.Err != nil {
				r.Failures = c.last.Failures + 1
			}
			c.last = r
			c.mu.Unlock()
			if r.Failures == 1 && c.log != nil {
				c.log.Warn("WAL checkpoint failed; retrying every interval", "every", every, "err", r.Err)
			}
		}
	}
}

// Last is the last checkpoint's report (zero before the first).
func (c *Checkpointer) Last() Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Stop ends the checkpoints and waits for one in progress. It is safe to
// call more than once.
func (c *Checkpointer) Stop() {
	c.once.Do(func() { close(c.stop) })
	<-c.done
}
