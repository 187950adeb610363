// Package preview shows what a canvas's messages look like for given users
// before anything runs: `huabu validate --preview USER` renders every
// message of a canvas for a user, and `huabu test-send` sends one step's
// message to test users through the real channel, marked [TEST] where the
// channel shows text.
//
// Messages are rendered by the engine (activities.Render,
// RenderStaffTask): the same owner lookup, templates, missing-data rule and
// opt-outs as a run, so what is previewed is what would be sent. A test
// send happens outside any run: it writes no delivery-ledger row and no
// frequency-cap touch, so it is in no report, cap or quota; the server
// records it in the audit log.
package preview
