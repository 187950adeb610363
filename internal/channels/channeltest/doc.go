// Package channeltest holds what the tests of channel providers share:
// building a registered channel with test dependencies, batches of
// deliveries, reading a send's verdict, a settable clock, and Drive, which
// resends a batch the way the engine does (keys kept, retryable and
// ambiguous deliveries resent), and the WeCom fake with its channel config.
// channels' own tests and each provider
// package's (internal/channels/wecom) use it instead of keeping copies.
package channeltest
