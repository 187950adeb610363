// Package console is Huabu's operator console: HTML pages, served by every
// Huabu process at / of the admin listener, that show every canvas with its
// status and trigger, each canvas's flow drawn with its steps' counts, runs
// with live progress and pause/resume/stop, and the way back in for people
// (a login form) beside the bearer token scripts use.
//
// Pages are rendered on the server with html/template from files embedded
// in the binary (go:embed), the flow graph is laid out here and drawn as
// SVG from the same nodes and edges `huabu graph` draws
// (canvases.Plan.Graph), and a few lines of vanilla JavaScript refresh a
// running run. Nothing is loaded from elsewhere, so the console works
// offline. It reads through Backend (app.App implements it) and
// authenticates with package auth: the same tokens and roles as the admin
// API, a signed session cookie for browsers, and a form token against
// cross-site requests (ADR 017).
package console
