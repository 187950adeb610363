// Package outbound holds the few types about a message leaving Huabu that
// several layers share: who it goes to (Recipient and the reserved profile
// attributes it reads), what the outbox records of it (OutboxRecord), and
// which staff member a WeCom customer belongs to (ContactPair,
// ContactScreen). It is a leaf: it imports only canvases (for the rendered
// Message), so the store can use these types without importing channels,
// and channels re-exports them under their old names as aliases. NextSlot
// is the pacing arithmetic the WeCom pacer and the store both book with.
package outbound
