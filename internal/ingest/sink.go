package ingest

import (
	"context"
	"time"
)

// Event is a track event after it is durably stored, as the engine sees it.
type Event struct {
	ID           int64          // the store's id
	UID          int64          // the profile's internal id
	UserID       string         // the app's userId
	Name         string         // the event name, e.g. purchase
	Properties   map[string]any // the event's properties
	Timestamp    time.Time      // when it happened (the payload's timestamp)
	ReceivedAt   time.Time      // when Huabu accepted it
	FromRealtime bool           // sent live (HTTP), not imported from a file
}

// Sink receives events after they are stored: event triggers, waits for an
// event, exits and goals. Events must return quickly (the engine queues and
// batches them); the HTTP request has already been answered or is about to be.
type Sink interface {
	Events(ctx context.Context, events []Event)
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(ctx context.Context, events []Event)

func (f SinkFunc) Events(ctx context.Context, events []Event) { f(ctx, events) }
