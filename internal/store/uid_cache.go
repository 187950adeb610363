package store

import (
	"context"
	"database/sql"
	"strings"
	"sync"
)

// uidCacheSize is how many profile ids each of the cache's two generations
// holds (~80 bytes an entry): the users of a stream's recent groups, not
// every profile of a large store.
const uidCacheSize = 1 << 18

// uidCache remembers the uid of each profile id the SQLite applier has read
// or created (ADR 047), so a known user's events cost no profiles probe.
// A profile's uid never changes; what can change is which profile an id
// names — forget renames a profile's id to a tombstone, adopting a WeCom
// placeholder renames it to the user's id — and every such change, by this
// process or another one writing the same file, adds one to
// profile_id_changes (migration 027's triggers). The applier reads that
// counter in each group's transaction and forgets everything when it moved.
//
// Entries found in a transaction are published only after it commits, so a
// rolled-back group (whose created profiles do not exist) leaves nothing.
type uidCache struct {
	mu       sync.Mutex
	changes  int64 // profile_id_changes.n the entries were read under
	cur, old map[string]int64
}

// uidLookup is one applier transaction's use of the cache: the counter it
// read, and the ids it found or created, published by commit.
type uidLookup struct {
	cache   *uidCache
	changes int64
	found   map[string]int64
}

// begin reads the id-change counter in tx (the writer's transaction: no
// other writer can commit until it ends) and empties the cache when ids
// changed since its entries were read.
func (c *uidCache) begin(ctx context.Context, tx *sql.Tx) (*uidLookup, error) {
	var n int64
	if err := tx.QueryRowContext(ctx, `SELECT n FROM profile_id_changes`).Scan(&n); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if n != c.changes || c.cur == nil {
		c.changes, c.cur, c.old = n, map[string]int64{}, nil
	}
	c.mu.Unlock()
	return &uidLookup{cache: c, changes: n, found: map[string]int64{}}, nil
}

// known moves the users the cache knows into uidOf and returns the others.
func (l *uidLookup) known(users []string, uidOf map[string]int64) []string {
	c := l.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changes != l.changes {
		return users
	}
	rest := users[:0:0]
	for _, u := range users {
		if uid, ok := c.cur[u]; ok {
			uidOf[u] = uid
		} else if uid, ok := l.found[u]; ok { // an earlier pass of this transaction
			uidOf[u] = uid
		} else if uid, ok := c.old[u]; ok {
			uidOf[u] = uid
			l.found[u] = uid // keep it in the newer generation
		} else {
			rest = append(rest, u)
		}
	}
	return rest
}

// add records the uids of users, read or created in the transaction.
func (l *uidLookup) add(users []string, uidOf map[string]int64) {
	for _, u := range users {
		if uid, ok := uidOf[u]; ok {
			l.found[u] = uid
		}
	}
}

// commit publishes what the committed transaction found. When ids changed
// since begin (another process, after our commit), nothing is kept: the
// next transaction's begin reads the new counter and starts afresh.
func (l *uidLookup) commit() {
	c := l.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changes != l.changes {
		return
	}
	for u, uid := range l.found {
		if len(c.cur) >= uidCacheSize {
			c.old, c.cur = c.cur, make(map[string]int64, uidCacheSize/4)
		}
		// A copy: u may point into a request body the cache must not keep.
		c.cur[strings.Clone(u)] = uid
	}
}
