package channels

import (
	"context"
	"errors"
	"time"
)

func init() {
	Register(Spec{
		Name: "outbox", Provider: "outbox",
		Doc:           "Records rendered messages in the store (huabu outbox) instead of sending them.",
		MaxRecipients: 1000,
	}, func(_ map[string]any, deps Deps) (Channel, error) {
		if deps.Outbox == nil {
			return nil, errors.New("outbox: no store to write to")
		}
		return &outbox{w: deps.Outbox, now: deps.Now, meantFor: "outbox"}, nil
	})
}

// outbox is a real channel whose provider is the store: what every
// unconfigured channel uses, so a new user sees exactly what would be sent.
type outbox struct {
	w        OutboxWriter
	now      func() time.Time
	meantFor string // the catalogue channel the messages were for
}

func (o *outbox) Spec() Spec {
	s, _, _ := Lookup("outbox", "outbox")
	return s
}

func (o *outbox) Send(ctx context.Context, b Batch) ([]Outcome, error) {
	at := o.now()
	records := make([]OutboxRecord, len(b.Deliveries))
	for i, d := range b.Deliveries {
		records[i] = OutboxRecord{
			CanvasID: b.CanvasID, RunID: b.RunID, StepID: b.StepID, Channel: o.meantFor,
			Recipient: d.Recipient, Message: *d.Message, At: at,
		}
	}
	if err := o.w.WriteOutbox(ctx, records); err != nil {
		return nil, &Error{Class: RetryNow, Reason: "store", Message: err.Error()}
	}
	out := make([]Outcome, len(b.Deliveries))
	for i := range out {
		out[i] = Outcome{Status: Sent}
	}
	return out, nil
}
