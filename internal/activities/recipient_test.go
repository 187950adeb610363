package activities

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/store"
)

// TestRecipient pins who a user's message goes to on each catalogue
// channel, and why not when nobody: the address attribute per channel, push's
// alias-else-registration-id, the owner as wecom.customer's sender and as
// wecom.group's address, the user id for webhook and outbox, the owner or
// their leader for staff recipients. Whoever derives addresses from the
// channel specs (closing-14.md, "left") keeps this table passing or says
// which row changed and why.
func TestRecipient(t *testing.T) {
	full := map[string]any{"id": "u1", "owner": "zhang", "phone": "13800000001", "email": "u1@example.com",
		"push_alias": "alias-1", "push_registration_id": "reg-1", "wecom_external_userid": "wm-1", "wecom_userid": "u1-staff"}
	attrs := map[string]string{"phone": "13800000001", "email": "u1@example.com", "push_alias": "alias-1",
		"push_registration_id": "reg-1", "wecom_external_userid": "wm-1", "wecom_userid": "u1-staff"}
	only := func(kv ...string) map[string]any {
		doc := map[string]any{"id": "u1"}
		for i := 0; i < len(kv); i += 2 {
			doc[kv[i]] = kv[i+1]
		}
		return doc
	}
	owners := map[string]store.Staff{"zhang": {UserID: "zhang", Leader: "wang"}, "li": {UserID: "li"}}
	for _, tc := range []struct {
		name    string
		channel string
		to      string
		user    map[string]any
		address string // Recipient.Address
		sender  string
		userID  string // Recipient.UserID when not the user's id
		reason  string
	}{
		{"wecom.app", "wecom.app", canvases.ToUser, full, "u1-staff", "", "", ""},
		{"wecom.customer: as the owner", "wecom.customer", canvases.ToUser, full, "wm-1", "zhang", "", ""},
		{"wecom.customer without an owner", "wecom.customer", canvases.ToUser, only("wecom_external_userid", "wm-1"), "wm-1", "", "", channels.ReasonNoOwner},
		{"wecom.customer without an external id", "wecom.customer", canvases.ToUser, only("owner", "zhang"), "", "zhang", "", channels.ReasonNoAddress},
		{"wecom.group (a user's fallback): the owner's groups", "wecom.group", canvases.ToUser, full, "zhang", "zhang", "", ""},
		{"wecom.group (a user's fallback) without an owner", "wecom.group", canvases.ToUser, only(), "", "", "", channels.ReasonNoAddress},
		{"sms", "sms", canvases.ToUser, full, "13800000001", "", "", ""},
		{"sms without a phone", "sms", canvases.ToUser, only("email", "u1@example.com"), "", "", "", channels.ReasonNoAddress},
		{"push: the alias first", "push", canvases.ToUser, full, "alias-1", "", "", ""},
		{"push: else the registration id", "push", canvases.ToUser, only("push_registration_id", "reg-1"), "reg-1", "", "", ""},
		{"push with neither", "push", canvases.ToUser, only(), "", "", "", channels.ReasonNoAddress},
		{"email", "email", canvases.ToUser, full, "u1@example.com", "", "", ""},
		{"webhook: the user id", "webhook", canvases.ToUser, only(), "u1", "", "", ""},
		{"outbox: the user id", "outbox", canvases.ToUser, only(), "u1", "", "", ""},
		{"a channel the engine has no address for", "fax", canvases.ToUser, full, "", "", "", channels.ReasonNoAddress},
		{"to the owner", "wecom.app", canvases.ToOwner, full, "zhang", "", "zhang", ""},
		{"to the owner, none", "wecom.app", canvases.ToOwner, only(), "", "", "", channels.ReasonNoOwner},
		{"to the owner's leader", "wecom.app", canvases.ToOwnerLeader, full, "wang", "", "wang", ""},
		{"to the owner's leader, none", "wecom.app", canvases.ToOwnerLeader, only("owner", "li"), "", "", "", "no_leader"},
		{"to the owner's leader, owner unknown", "wecom.app", canvases.ToOwnerLeader, only("owner", "zhao"), "", "", "", "no_leader"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &sender{push: &canvases.Push{To: tc.to}}
			rec, reason := s.recipient(tc.channel, tc.user, owners)
			require.Equal(t, tc.reason, reason)
			require.Equal(t, tc.address, rec.Address)
			require.Equal(t, tc.sender, rec.Sender)
			userID := tc.userID
			if userID == "" {
				userID = "u1"
			}
			if reason == "" {
				require.Equal(t, userID, rec.UserID)
			}
			if len(tc.user) == len(full) {
				require.Equal(t, attrs, rec.Attrs, "the reserved attributes travel with every recipient")
			}
		})
	}
}

// staffOnly is the one store read sender.load makes besides the profile
// rows it is handed: the owners' staff records (none here).
type staffOnly struct{ Store }

func (staffOnly) StaffByIDs(context.Context, []string) (map[string]store.Staff, error) {
	return map[string]store.Staff{}, nil
}

// TestAddressMembersMatchExactly pins how a profile's address members are
// read: by their exact names, strings only, the same whether the message is
// rendered per user (the whole document decoded) or not (only the address
// members walked, 3b9e1cf). A profile written with "Phone" has no phone:
// Huabu writes the reserved attributes in lower case (identify, import), and
// conditions and templates read them by those names too.
func TestAddressMembersMatchExactly(t *testing.T) {
	for _, tc := range []struct {
		name, doc, address, reason string
	}{
		{"phone", `{"phone":"13800000001"}`, "13800000001", ""},
		{"another case", `{"Phone":"13800000001"}`, "", channels.ReasonNoAddress},
		{"empty", `{"phone":""}`, "", channels.ReasonNoAddress},
		{"a number", `{"phone":13800000001}`, "", channels.ReasonNoAddress},
		{"null", `{"phone":null}`, "", channels.ReasonNoAddress},
		{"not a profile", `[1,2]`, "", channels.ReasonNoAddress},
		{"a null profile", `null`, "", channels.ReasonNoAddress},
	} {
		for _, text := range []string{"您好", "{{name}} 您好"} {
			t.Run(tc.name+"/"+text, func(t *testing.T) {
				s := &sender{a: &Activities{Store: staffOnly{}}, push: &canvases.Push{Message: canvases.Message{Text: text}}}
				users, owners, err := s.load(context.Background(), []store.ProfileRow{{UID: 1, ID: "u1", Doc: []byte(tc.doc)}})
				require.NoError(t, err)
				rec, reason := s.recipient("sms", users[1], owners)
				require.Equal(t, tc.reason, reason)
				require.Equal(t, tc.address, rec.Address)
			})
		}
	}
}
