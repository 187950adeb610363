// Package sqliteheap gives the SQLite library (modernc.org/sqlite, used by
// the store and by the embedded Temporal server) an allocator that keeps the
// blocks it frees for reuse.
//
// SQLite's default allocator in this pure-Go build is modernc.org/memory: it
// maps every allocation above 16 KiB with its own mmap and unmaps it on
// free, and unmaps a shared 64 KiB page as soon as its last slot is freed.
// SQLite frees and reallocates exactly such memory all the time — the
// scratch space of every b-tree page split, the pages a reader's cache drops
// whenever another connection wrote, statement journals — so the munmap
// system calls and the page faults of the fresh mappings were 17–19 % of all
// CPU in every `huabu bench` (docs/performance.md). Here blocks from 1 KiB to
// 1 MiB are rounded up to a power of two and, when freed, kept on a free
// list per size (up to MaxCached bytes in all) for the next allocation of
// that size; everything else goes to the default allocator as before.
//
// Importing the package installs the allocator (SQLITE_CONFIG_MALLOC), which
// SQLite accepts only before it is first used: the store imports it, so it
// is in place before any database is opened. HUABU_SQLITE_HEAP=default
// leaves SQLite's own allocator in place.
package sqliteheap
