// Package embedded runs a complete Temporal server inside the Huabu process,
// backed by a SQLite file, so that `huabu dev` needs no external services.
//
// It is the same library and wiring that Temporal's own `temporal server
// start-dev` uses: the go.temporal.io/server frontend, history, matching and
// worker services in one process, talking to each other over loopback gRPC
// (static membership, free ports picked at start), with SQLite persistence in
// Options.DataDir/temporal.db. Workflows, timers and schedules survive a
// restart on the same DataDir. The server's internal worker runs too, so
// Temporal Schedules fire.
//
// Production deployments do not use this package: they point the same worker
// at a Temporal cluster instead. Callers only need HostPort and Namespace to
// build an ordinary go.temporal.io/sdk client:
//
//	srv, err := embedded.Start(ctx, embedded.Options{DataDir: dir})
//	if err != nil { ... }
//	defer srv.Stop()
//	c, err := client.Dial(client.Options{HostPort: srv.HostPort(), Namespace: srv.Namespace()})
//
// Server logs go to Options.Logger, warn and above by default because
// Temporal is chatty at info; cancellations logged during Stop are dropped.
// DefaultDynamicConfig lifts the per-host rate limits that would otherwise
// throttle a burst of activities on one box.
//
// Limits inherited from the server library, per process:
//   - the sqlite plugin keeps one connection per database open until the
//     process exits, so Stop does not close temporal.db (a later Start on the
//     same DataDir reuses the connection; two servers on one DataDir at the
//     same time are refused);
//   - a few internal SDK workers (scanners, parent-close-policy) are never
//     stopped by the server and keep retrying the old frontend address,
//     about 100 goroutines and a few MB per Start/Stop cycle;
//   - Stop takes about a second: the frontend drains for at least 1s.
package embedded
