package sqlitewal

import (
	"database/sql"
	"sync"
	"time"
)

// Checkpointer runs `PRAGMA wal_checkpoint(PASSIVE)` on a database at a
// fixed interval until Stop.
type Checkpointer struct {
	db   *sql.DB
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu   sync.Mutex
	last Result
}

// Result is what a checkpoint reported: the frames in the WAL and how many
// of them are in the database file now.
type Result struct {
	LogFrames, Checkpointed int
}

// Start checkpoints db every interval. db is any connection or pool on the
// database (a reader pool will do); Stop does not close it.
func Start(db *sql.DB, every time.Duration) *Checkpointer {
	c := &Checkpointer{db: db, stop: make(chan struct{}), done: make(chan struct{})}
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
			// A failed checkpoint (the database busy or closing) is simply
			// tried again at the next tick; SQLite's own bound still holds.
			var busy int
			var r Result
			if err := c.db.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &r.LogFrames, &r.Checkpointed); err == nil {
				c.mu.Lock()
				c.last = r
				c.mu.Unlock()
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
