// Package traits computes a profile's traits from its events and keeps the
// user document current: the computed traits of the config
// (`profile.traits`: count, sum, min, max, first, last and days_since of an
// event or event property, optionally within a window), RFM scores
// (`profile.rfm`, 1–5 by quintiles of the purchasing population) and the
// auto-tag rules (`tags:`), so canvases read `user.traits.*`, `user.rfm.*`
// and `user.tags` with no extra query.
//
// How values stay correct:
//
//   - Ingestion marks the users it touched as dirty (store trait_dirty) in
//     the transaction that stores their events (a profile import does the
//     same for the profiles it writes), and calls Engine.Notify. The
//     Engine's loop (Run) recomputes due users page by page, each page one
//     store transaction: every aggregate of the page is one SQL statement of
//     index range scans over events(uid, name, ts), so a user's cost does
//     not grow with the size of the population.
//   - A value is always recomputed from the stored events (never patched
//     by the new event alone), so events arriving out of order, late or
//     twice (deduplicated by messageId) cannot leave it wrong. first and last
//     are ordered by event time, then arrival, over the events that carry
//     the property.
//   - A recomputation also stores when the user's values next change without
//     any new event — a windowed event leaving its window, the next whole day
//     of a days_since — as the user's next due time (trait_due); the loop's periodic
//     refresh picks up exactly those users, so windows slide with no events.
//   - RFM raw values (last purchase, count and amount within the window) are
//     kept per purchaser in rfm_values; quintile boundaries are recomputed
//     over that table periodically (RefreshRFM, hourly by default, and when
//     Run starts with boundaries older than that), which rescores everyone,
//     while new purchasers are scored at once against the last boundaries
//     (the very first ones wait for the first boundaries, which Run computes
//     before WaitCurrent returns).
//   - Time comes only from the store's clock (TraitTx.Now), so tests move
//     time with store.SQLite.SetClock.
//   - WaitCurrent returns once no user is dirty, without waiting for a
//     backlog of users due by time.
//   - Auto-tag rules are evaluated whenever a user is recomputed or rescored
//     (an identify marks the user due too, so attribute rules follow). A
//     rule owns its tag: it adds it when true and removes it when false;
//     other tags are left alone.
//   - Documents are decoded with json.Number, so attributes are written
//     back byte for byte; only traits, rfm and tags are Huabu's.
//   - When the definitions change (a new trait, window or rule), Sync marks
//     every profile due once, so stored values never mix definitions; with
//     RFM removed from the config, scores, raw values and boundaries go.
package traits
