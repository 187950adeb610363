package activities

import (
	"context"
	"fmt"
	"strings"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/store"
)

// SuppressionStore is the suppression list opt-outs are checked against and
// permanent failures add to.
type SuppressionStore interface {
	SuppressedAmong(ctx context.Context, channel string, subjects []string) (map[string]bool, error)
	Suppress(ctx context.Context, entries []store.Suppression) (int, error)
}

// Opt-outs: the suppression list and consent, checked for every marketing
// message to a user on every channel, fallbacks included. Transactional
// canvases (receipts, verification codes) and messages to staff are exempt,
// as they are from quiet hours.

// Reasons of deliveries held back by opt-outs.
const (
	ReasonUnsubscribed = channels.ReasonUnsubscribed // on the suppression list
	ReasonNoConsent    = "no_consent"                // policy.require_consent's trait is not true
)

// optOutApplies says whether this send is marketing to users.
func (s *sender) optOutApplies() bool {
	return s.push.To == canvases.ToUser && s.cp.plan.Policy.Kind != "transactional"
}

// optOut takes the recipients who opted out of channel, by user id or by
// address, or who have not consented, out of out, and settles them as
// suppressed.
func (s *sender) optOut(ctx context.Context, channel string, out []outgoing, users map[int64]map[string]any) ([]outgoing, []store.Settlement, error) {
	if len(out) == 0 || !s.optOutApplies() {
		return out, nil, nil
	}
	cands := make([]optCandidate, len(out))
	for i, o := range out {
		cands[i] = optCandidate{uid: o.uid, userID: o.delivery.Recipient.UserID, address: o.delivery.Recipient.Address, doc: users[o.uid]}
	}
	reasons, err := s.a.optOutReasons(ctx, channel, cands)
	if err != nil {
		return nil, nil, err
	}
	if len(reasons) == 0 {
		return out, nil, nil
	}
	var settled []store.Settlement
	kept := make([]outgoing, 0, len(out)-len(reasons))
	for _, o := range out {
		if r := reasons[o.uid]; r != "" {
			settled = append(settled, store.Settlement{UID: o.uid, State: store.DeliverySuppressed, Reason: r, Channel: channel})
		} else {
			kept = append(kept, o)
		}
	}
	return kept, settled, nil
}

// optCandidate is a recipient the opt-out check looks at.
type optCandidate struct {
	uid             int64
	userID, address string
	doc             map[string]any
}

// optOutReasons says which candidates opted out on channel, and why
// (no_consent, unsubscribed): one lookup of the suppression list for all.
func (a *Activities) optOutReasons(ctx context.Context, channel string, cands []optCandidate) (map[int64]string, error) {
	out := map[int64]string{}
	if trait := a.Policy.RequireConsent; trait != "" {
		for _, c := range cands {
			if !consented(c.doc[trait]) {
				out[c.uid] = ReasonNoConsent
			}
		}
	}
	subjects := make([]string, 0, 2*len(cands))
	addr := make([]string, len(cands))
	for i, c := range cands {
		if out[c.uid] != "" {
			continue
		}
		subjects = append(subjects, store.UserSubject(c.userID))
		if c.address != "" && c.address != c.userID {
			addr[i] = store.AddressSubject(c.address)
			subjects = append(subjects, addr[i])
		}
	}
	suppressed, err := a.Store.SuppressedAmong(ctx, channel, subjects)
	if err != nil {
		return nil, err
	}
	if len(suppressed) == 0 { // the usual case: nobody on the page opted out
		return out, nil
	}
	for i, c := range cands {
		if suppressed[store.UserSubject(c.userID)] || addr[i] != "" && suppressed[addr[i]] {
			out[c.uid] = ReasonUnsubscribed
		}
	}
	return out, nil
}

// consented reads a consent trait: true, "true", "yes", "1" or 1.
func consented(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "yes", "1", "y":
			return true
		}
	case float64:
		return v == 1
	}
	return false
}

// recordRefusals puts the addresses a provider refused as unsubscribed
// (Aliyun isv.CUSTOMER_REFUSED, Tencent PhoneNumberInBlacklist ...) on the
// suppression list for that channel, so they are not tried again.
func (s *sender) recordRefusals(ctx context.Context, channel string, out []outgoing, ds []decided) error {
	byUID := make(map[int64]string, len(out))
	for _, o := range out {
		byUID[o.uid] = o.delivery.Recipient.Address
	}
	var entries []store.Suppression
	for _, d := range ds {
		if d.State != store.DeliveryFailed || d.Reason != channels.ReasonUnsubscribed {
			continue
		}
		if a := byUID[d.UID]; a != "" {
			entries = append(entries, store.Suppression{Subject: store.AddressSubject(a), Channel: channel, Source: store.SuppressProviderRefusal,
				Reason: fmt.Sprintf("refused by the provider (run %d, step %s)", s.in.RunID, s.in.StepID), Display: store.MaskAddress(a)})
		}
	}
	if len(entries) == 0 {
		return nil
	}
	_, err := s.a.Store.Suppress(ctx, entries)
	return err
}
