package embedded

import "time"

// DefaultDynamicConfig is the dynamic config the embedded server starts with,
// tuned for one throughput-oriented box. Options.DynamicConfig overrides it
// key by key.
//
// Temporal's defaults are per-host limits sized for a cluster of many hosts
// in front of a shared database; here every service is one host and every
// request a local call, so the rate limits would only throttle bursts (a
// cohort of thousands of activities polls and completes thousands of tasks a
// second) without protecting anything. SQLite is the real limit.
var DefaultDynamicConfig = map[string]any{
	// As the dev server: make new search attributes visible at once.
	"system.forceSearchAttributesCacheRefreshOnRead": true,
	// Workflow update is on by default in 1.32; say so to survive a default flip.
	"frontend.enableUpdateWorkflowExecution":              true,
	"frontend.enableUpdateWorkflowExecutionAsyncAccepted": true,

	// Persistence QPS: the dev server raises frontend and history; matching
	// and worker write task queues and schedules and get the same headroom.
	"frontend.persistenceMaxQPS": 10000,
	"history.persistenceMaxQPS":  45000,
	"matching.persistenceMaxQPS": 45000,
	"worker.persistenceMaxQPS":   10000,

	// Request rate limits (defaults: frontend 2400/s per host and per
	// namespace, history 3000/s, matching 1200/s).
	"frontend.rps":                     100000,
	"frontend.namespaceRPS":            100000,
	"frontend.namespaceRPS.visibility": 1000, // default 10; the dev server uses 100
	"history.rps":                      100000,
	"matching.rps":                     100000,

	// Bound how long a client waiting on a workflow (run.Get) can miss its
	// wake-up: history's notifier drops a notification when the waiter's
	// one-slot channel still holds a stale one, and the waiter then sleeps
	// until this expiry (default 20s) before re-reading. Seen as rare 20s
	// stalls of run.Get on a busy 2-core box; a re-poll every few seconds
	// costs nothing locally.
	"history.longPollExpirationInterval": 3 * time.Second,

	// As the dev server: a larger mutable-state cache (default 128k bytes
	// per shard host is counted in entries here).
	"history.cacheHostLevelMaxSize": 8096,
}
