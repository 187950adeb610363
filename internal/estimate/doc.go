// Package estimate answers "how many will this canvas reach?" before it is
// deployed or run: how many profiles match the audience and would enter
// (re-entry rules applied), for an event trigger how many of them sent the
// event in the last seven days in a way that would have started the
// journey, how many can be reached on each channel the canvas uses, how
// many the sending policy holds back right now (frequency caps, quiet
// hours, suppression), and ten of the users.
//
// Profiles are evaluated in pages of consecutive uids, several pages at a
// time, each profile decoded only as far as the fields the canvas's
// conditions read. Pages are taken in a fixed pseudo-random order; when the
// time budget runs out before every page is done, the pages done are a
// random sample of the store and the totals are scaled up from them, with a
// 95% margin of error (cluster sampling over equal-sized uid ranges). With
// Exact, or when the store is small enough to finish in time, every profile
// is counted and the margin is zero.
//
// The answers come from the engine's own code: conditions are compiled by
// the canvas compiler and evaluated as the Enter activity evaluates them,
// addresses are resolved by activities.Reachable and the policy by
// Activities.HeldBack, so the estimate cannot drift from what a run does.
package estimate
