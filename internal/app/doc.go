// Package app wires Huabu together: the store, the channels, a Temporal
// client (to an embedded server or a cluster), the interpreter worker, the
// deployer that turns canvases into plan versions and Temporal Schedules,
// and the HTTP API. `huabu dev` and `huabu worker` are thin wrappers around
// Start.
package app
