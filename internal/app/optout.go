package app

import (
	"context"

	"github.com/huabu/huabu/internal/auth"
	"github.com/huabu/huabu/internal/server"
	"github.com/huabu/huabu/internal/store"
)

// Opt-outs and PIPL deletion, behind the admin API; every action is in
// the audit log with its counts (never the forgotten users' ids).

func subjectsOf(req server.SuppressRequest) []store.Suppression {
	var out []store.Suppression
	for _, u := range req.Users {
		out = append(out, store.Suppression{Subject: store.UserSubject(u), Display: u})
	}
	for _, a := range req.Addresses {
		out = append(out, store.Suppression{Subject: store.AddressSubject(a), Display: store.MaskAddress(a)})
	}
	return out
}

// Suppress puts users and addresses on the suppression list.
func (app *App) Suppress(ctx context.Context, req server.SuppressRequest) (server.SuppressOutcome, error) {
	entries := subjectsOf(req)
	for i := range entries {
		entries[i].Channel, entries[i].Source, entries[i].Reason = req.Channel, store.SuppressAPI, req.Reason
		if entries[i].Reason == "" {
			entries[i].Reason = "by " + auth.ActorFrom(ctx).Name
		}
	}
	n, err := app.store.Suppress(ctx, entries)
	if err != nil {
		return server.SuppressOutcome{}, err
	}
	app.audit(ctx, "suppress", "", "", map[string]any{"users": req.Users, "addresses": len(req.Addresses), "channel": channelName(req.Channel), "added": n, "reason": req.Reason})
	return server.SuppressOutcome{Added: n}, nil
}

// Unsuppress takes users and addresses off the list (one channel, the
// every-channel entry, or "*" for all their entries).
func (app *App) Unsuppress(ctx context.Context, req server.SuppressRequest) (server.SuppressOutcome, error) {
	var subjects []string
	for _, e := range subjectsOf(req) {
		subjects = append(subjects, e.Subject)
	}
	n, err := app.store.Unsuppress(ctx, subjects, req.Channel)
	if err != nil {
		return server.SuppressOutcome{}, err
	}
	app.audit(ctx, "unsuppress", "", "", map[string]any{"users": req.Users, "addresses": len(req.Addresses), "channel": channelName(req.Channel), "removed": n})
	return server.SuppressOutcome{Removed: n}, nil
}

func channelName(ch string) string {
	if ch == "" {
		return "all"
	}
	return ch
}

// Suppressions lists entries of the suppression list.
func (app *App) Suppressions(ctx context.Context, f server.SuppressionFilter) ([]store.Suppression, error) {
	q := store.SuppressionQuery{Channel: f.Channel, Limit: f.Limit}
	for _, e := range subjectsOf(server.SuppressRequest{Users: f.Users, Addresses: f.Addresses}) {
		q.Subjects = append(q.Subjects, e.Subject)
	}
	return app.store.Suppressions(ctx, q)
}

// Forget carries out PIPL deletion of users (store.ForgetUsers says what
// goes and what stays). The audit entry has counts only.
func (app *App) Forget(ctx context.Context, userIDs []string) (store.ForgetResult, error) {
	res, err := app.store.ForgetUsers(ctx, userIDs)
	if res.Forgotten > 0 || err != nil {
		detail := map[string]any{"users": res.Forgotten, "events": res.Events, "messages": res.Messages, "suppressions_kept": res.Kept}
		if err != nil {
			detail["error"] = err.Error()
		}
		app.audit(ctx, "forget", "", "", detail)
	}
	return res, err
}

// smsReplies is POST /sms/replies when channels.sms has a reply_token.
func (app *App) smsReplies() *server.SMSReplies {
	sec := app.cfg.Channels["sms"]
	token, _ := sec["reply_token"].(string)
	provider := app.cfg.Provider("sms")
	if token == "" || (provider != "aliyun" && provider != "tencent") {
		return nil
	}
	return &server.SMSReplies{Provider: provider, Token: token, Store: app.store, Log: app.log.With("component", "sms-replies"),
		Recorded: func(ctx context.Context, source string, replies, added int) {
			app.audit(auth.WithActor(ctx, auth.Actor{Name: source}), "suppress", "", "",
				map[string]any{"source": source, "replies": replies, "added": added, "channel": "sms"})
		}}
}
