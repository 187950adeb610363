package preview

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/store"
)

// Engine renders messages as runs do (*activities.Activities).
type Engine interface {
	Render(ctx context.Context, plan *canvases.Plan, stepID string, rows []store.ProfileRow) ([]activities.Rendered, error)
	RenderStaffTask(plan *canvases.Plan, stepID string, staff store.Staff) (*canvases.Message, error)
}

// Store is what previews read.
type Store interface {
	UIDs(ctx context.Context, ids []string) (map[string]int64, error)
	Profiles(ctx context.Context, uids []int64) ([]store.ProfileRow, error)
	StaffByIDs(ctx context.Context, ids []string) (map[string]store.Staff, error)
}

// Channels are the deployment's channels (*channels.Set).
type Channels interface {
	Get(name string) (channels.Channel, bool)
}

// Message is one step's message for one user.
type Message struct {
	Step string `json:"step"`
	User string `json:"user"`
	// Channel is the channel it goes through (a fallback's when the user has
	// no address on the step's); To is the recipient, masked.
	Channel string            `json:"channel"`
	To      string            `json:"to,omitempty"`
	Message *canvases.Message `json:"message,omitempty"`
	// Unsent says why nothing would be sent to this user (no_address,
	// missing_data, unsubscribed, ...).
	Unsent string `json:"unsent,omitempty"`
}

// ErrUnknownUsers names users the store does not have.
type ErrUnknownUsers []string

func (e ErrUnknownUsers) Error() string {
	return "no profile for " + strings.Join(e, ", ")
}

// profiles reads the users' profiles, in the order given.
func profiles(ctx context.Context, st Store, users []string) ([]store.ProfileRow, error) {
	uids, err := st.UIDs(ctx, users)
	if err != nil {
		return nil, err
	}
	var missing ErrUnknownUsers
	list := make([]int64, 0, len(users))
	for _, u := range users {
		if uid, ok := uids[u]; ok {
			list = append(list, uid)
		} else {
			missing = append(missing, u)
		}
	}
	if len(missing) > 0 {
		return nil, missing
	}
	rows, err := st.Profiles(ctx, list)
	if err != nil {
		return nil, err
	}
	byID := map[string]store.ProfileRow{}
	for _, r := range rows {
		byID[r.ID] = r
	}
	out := make([]store.ProfileRow, 0, len(users))
	for _, u := range users {
		out = append(out, byID[u])
	}
	return out, nil
}

func toMessage(step string, r activities.Rendered) Message {
	m := Message{Step: step, User: r.UserID, Channel: r.Channel, Message: r.Message, Unsent: r.Unsent}
	if r.Unsent == "" && r.Recipient.Address != "" {
		m.To = channels.Mask(r.Recipient.Address)
		if r.Recipient.Sender != "" {
			m.To += " (sent by " + r.Recipient.Sender + ")"
		}
	}
	return m
}

// Render renders every message of a plan — each push step's, and each
// staff task's text for the user's owner — for each user, in step order.
func Render(ctx context.Context, eng Engine, st Store, plan *canvases.Plan, users []string) ([]Message, error) {
	rows, err := profiles(ctx, st, users)
	if err != nil {
		return nil, err
	}
	var out []Message
	for _, s := range plan.Steps {
		switch {
		case s.Push != nil:
			rendered, err := eng.Render(ctx, plan, s.ID, rows)
			if err != nil {
				return nil, err
			}
			for _, r := range rendered {
				out = append(out, toMessage(s.ID, r))
			}
		case s.StaffTask != nil:
			msgs, err := staffTask(ctx, eng, st, plan, s, rows)
			if err != nil {
				return nil, err
			}
			out = append(out, msgs...)
		}
	}
	return out, nil
}

// staffTask renders a staff task for each user: the task their owner gets
// (customers), or the brief the staff member gets (to: staff).
func staffTask(ctx context.Context, eng Engine, st Store, plan *canvases.Plan, s *canvases.Step, rows []store.ProfileRow) ([]Message, error) {
	var out []Message
	for _, r := range rows {
		doc := map[string]any{}
		_ = json.Unmarshal(r.Doc, &doc) // a malformed profile has no owner
		staffID, _ := doc["owner"].(string)
		if s.StaffTask.To == canvases.StaffToStaff {
			staffID, _ = doc["wecom_userid"].(string)
		}
		m := Message{Step: s.ID, User: r.ID, Channel: "staff_task", To: staffID}
		if staffID == "" {
			m.Unsent = channels.ReasonNoOwner
			if s.StaffTask.To == canvases.StaffToStaff {
				m.Unsent = channels.ReasonNoAddress
			}
			out = append(out, m)
			continue
		}
		staff, err := st.StaffByIDs(ctx, []string{staffID})
		if err != nil {
			return nil, err
		}
		member, ok := staff[staffID]
		if !ok {
			member = store.Staff{UserID: staffID}
		}
		msg, err := eng.RenderStaffTask(plan, s.ID, member)
		if err != nil {
			m.Unsent = "render_error: " + err.Error()
		}
		m.Message = msg
		out = append(out, m)
	}
	return out, nil
}

// TestMarker starts the text of a test message.
const TestMarker = "[TEST] "

// Mark puts the test marker on the text a person sees (text, title,
// subject, markdown); it reports false when the message has none of them
// (an SMS template: the provider fixes its text).
func Mark(m *canvases.Message) (*canvases.Message, bool) {
	out := *m
	marked := false
	for _, f := range []*string{&out.Text, &out.Title, &out.Subject, &out.Markdown} {
		if *f != "" {
			*f = TestMarker + *f
			marked = true
		}
	}
	if out.HTML != "" && out.Subject == "" {
		out.HTML = TestMarker + out.HTML
		marked = true
	}
	return &out, marked
}

// Sent is one test message and what the channel said.
type Sent struct {
	Message
	Marked  bool   `json:"marked"`           // carries the [TEST] marker
	Outcome string `json:"outcome"`          // sent | failed:REASON | unsent:REASON
	Detail  string `json:"detail,omitempty"` // the provider's message, on failure
}

// TestSender sends test messages.
type TestSender struct {
	Engine   Engine
	Store    Store
	Channels Channels
	Now      func() time.Time
}

var testBatches atomic.Int64

// Send renders a push step for the users and sends each message through
// the step's channel (or its fallback, as a run would), marked as a test.
// Nothing is written to the delivery ledger or the frequency-cap touches:
// the send is in no report, cap or quota.
func (t *TestSender) Send(ctx context.Context, plan *canvases.Plan, stepID string, users []string) ([]Sent, error) {
	step := plan.Step(stepID)
	if step == nil {
		return nil, fmt.Errorf("canvas %s has no step %q", plan.ID, stepID)
	}
	if step.Push == nil {
		return nil, fmt.Errorf("step %s is a %s step; test sends send push steps", stepID, step.Kind)
	}
	rows, err := profiles(ctx, t.Store, users)
	if err != nil {
		return nil, err
	}
	rendered, err := t.Engine.Render(ctx, plan, stepID, rows)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	out := make([]Sent, 0, len(rendered))
	for _, r := range rendered {
		s := Sent{Message: toMessage(stepID, r)}
		if r.Unsent != "" {
			s.Outcome = "unsent:" + r.Unsent
			out = append(out, s)
			continue
		}
		ch, ok := t.Channels.Get(r.Channel)
		if !ok {
			s.Outcome = "failed:no_channel"
			out = append(out, s)
			continue
		}
		msg, marked := Mark(r.Message)
		s.Message.Message, s.Marked = msg, marked
		// One delivery per call: a test is a handful of users, and each
		// outcome is then the provider's answer for that user.
		// A run id of its own per message: providers and receivers that
		// dedupe on (run, step, user) see each test as a new message.
		id := fmt.Sprintf("test-%d-%d", now().UnixNano(), testBatches.Add(1))
		outcomes, err := ch.Send(ctx, channels.Batch{
			Key:        id + "/" + plan.ID + "/" + stepID,
			CanvasID:   plan.ID,
			RunID:      id,
			StepID:     stepID,
			Deliveries: []channels.Delivery{{Recipient: r.Recipient, Message: msg}},
		})
		switch {
		case err != nil:
			ce := channels.Classify(err)
			s.Outcome, s.Detail = "failed:"+ce.Reason, ce.Message
		case len(outcomes) == 0:
			s.Outcome = "failed:no_outcome"
		case outcomes[0].Status == channels.Sent:
			s.Outcome = "sent"
		default:
			s.Outcome, s.Detail = string(outcomes[0].Status)+":"+outcomes[0].Reason, outcomes[0].Detail
		}
		out = append(out, s)
	}
	return out, nil
}
