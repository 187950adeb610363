// Package channels sends rendered messages through providers: WeCom (app
// messages, customer mass-send, groups), SMS (Aliyun, Tencent Cloud), app
// push (JPush, APNs), email, webhooks, and the outbox that records instead of
// sending.
//
// Each provider is one file that declares a Spec (name, provider, config
// fields, recipients per call, how content may be grouped) and registers a
// factory. Every provider maps its error codes into four classes (retry
// later, retry now, permanent for the recipient, ambiguous) and a stable
// Reason code, so the engine's delivery ledger can decide, centrally, what is
// resent and what is not. Package fakes runs local servers speaking each
// provider's wire format, for tests and `huabu dev`.
//
// WeCom is its own package, internal/channels/wecom: its three channels share one
// client (access tokens, the staff task and directory APIs) that the staff
// activities, the directory sync and the CLI use too. It registers with this
// package like any provider (an import of internal/channels/wecom does it); the
// exported helpers of this package (Results, Settings, DoHTTP, Gate,
// GroupByContent, Parallel...) are what a provider package builds on.
//
// # Batching
//
// The engine groups deliveries into Batches that fit the Spec; a channel
// turns one Batch into as few provider calls as the provider allows and
// returns one Outcome per delivery, in order. The engine should:
//
//   - group a page's deliveries by MessageKey (the rendered content) and, for
//     SameSender channels, by Recipient.Sender;
//   - send each group in batches of at most Spec.MaxRecipients
//     (BatchLimit(true));
//   - pack what is left (groups too small to be worth a call of their own,
//     e.g. personalised SMS) into mixed batches of at most Spec.MaxMixed
//     (BatchLimit(false)); a Spec without MaxMixed takes MaxRecipients
//     either way (one request per delivery: APNs, email, webhook, wecom.group).
//
// Channels also split oversized or mixed batches themselves, so a batch that
// breaks these rules costs calls, not correctness. Per provider:
//
//	wecom.app       1000 identical (one message/send), 100 mixed (one call per content)
//	wecom.customer  10000 identical per sender (one add_msg_template task), 100 mixed
//	wecom.group     100, one task per staff member (or one appchat/send per chat and content)
//	sms/aliyun      1000 identical (SendSms), 100 mixed (SendBatchSms per template)
//	sms/tencent     200 identical (SendSms), 50 mixed (one call per content)
//	push/jpush      1000 identical (one /v3/push), 100 mixed
//	push/apns       500, one HTTP/2 request each
//	email/smtp      100, one message each over one connection
//	webhook         100, one POST each
//
// # Outcomes and errors
//
// Send returns an error only when nothing in the batch was decided (every
// call failed the same way); its class applies to all deliveries. Otherwise
// each Outcome carries its own class: Failed+RetryNow/RetryLater were not
// sent and may be sent again (after RetryAfter), Failed+Permanent are final
// (SuppressesAddress says whether the address joins the suppression list),
// Unknown+Ambiguous may have been sent. Channels never log secrets or full
// addresses (phone numbers and emails are masked).
//
// # Limits kept here and elsewhere
//
// wecom.app paces each member to WeCom's per-member limits, in the store
// every worker shares when Deps.Slots is set (the worker sets it), else in
// process (wecom_pacer.go, ADR 023); JPush and wecom.app also
// stop calling once the provider says its rate-limit window is used up
// (pacing.go), and report the held deliveries as retry_later with the wait,
// which the engine sleeps out inside the Send activity. JPush cids and
// WeCom's duplicate check make a resend after an ambiguous failure safe
// within the provider's window. Frequency caps, quiet hours, suppression lists and the
// WeCom per-customer mass-send quota belong to the engine's send policy,
// which every channel goes through.
package channels
