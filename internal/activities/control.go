package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/huabu/huabu/internal/store"
)

// Pause, resume and stop, as sends see them. A Send checks its canvas's
// control state before each group of pages: while the canvas is paused it
// sends nothing and fails with a retryable CanvasPaused error, so Temporal
// retries it (every PauseRecheck) from its heartbeat cursor and the cohort
// holds where it is; once resumed, the messages it held longer than
// ResumeGrace are not sent (suppressed, reason expired) — no blast of stale
// messages; once stopped, the rest are suppressed with reason stopped.

// CanvasControls tells a canvas's control state.
type CanvasControls interface {
	ControlOf(ctx context.Context, canvasID string) (store.CanvasControl, error)
	// HoldSend, HeldSend and DecideHeldSend keep when a send was first
	// held, and whether it expired, in the store: heartbeat details are
	// throttled and may be lost with a failed attempt, and a retry must
	// not send what an earlier attempt decided had expired.
	HoldSend(ctx context.Context, key string, at time.Time) (time.Time, error)
	HeldSend(ctx context.Context, key string) (store.HeldSend, error)
	DecideHeldSend(ctx context.Context, key string, expired bool) error
}

// Reasons of deliveries held back by the canvas's control state.
const (
	ReasonExpired = "expired"
	ReasonStopped = "stopped"
)

// PauseRecheck is how often a paused send looks again (a variable for
// tests, set before any worker starts).
var PauseRecheck = 5 * time.Second

// DefaultResumeGrace is resume_grace when the config gives none.
const DefaultResumeGrace = time.Hour

func (s *sender) checkControl(ctx context.Context, cur *sendCursor) error {
	if s.a.Controls == nil {
		return nil
	}
	c, err := s.a.Controls.ControlOf(ctx, s.in.CanvasID)
	if err != nil {
		return err
	}
	info := activity.GetInfo(ctx)
	key := s.in.HoldKey
	if key == "" {
		key = info.WorkflowExecution.RunID + "/" + info.ActivityID
	}
	switch c.State {
	case store.CanvasPaused:
		if cur.HeldSince.IsZero() {
			if cur.HeldSince, err = s.a.Controls.HoldSend(ctx, key, s.a.now()); err != nil {
				return err
			}
		}
		activity.RecordHeartbeat(ctx, *cur)
		return temporal.NewApplicationErrorWithOptions(fmt.Sprintf("canvas %s is paused: nothing is sent until it is resumed", s.in.CanvasID),
			"CanvasPaused", temporal.ApplicationErrorOptions{NextRetryDelay: PauseRecheck,
				// Expected while paused: the SDK logs it at debug, not as an
				// "Activity error" every PauseRecheck.
				Category: temporal.ApplicationErrorCategoryBenign})
	case store.CanvasStopped:
		s.held = ReasonStopped
	default:
		if s.held != "" {
			return nil // decided for the rest of this attempt
		}
		if cur.HeldSince.IsZero() && (info.Attempt > 1 || s.in.HoldKey != "") {
			h, err := s.a.Controls.HeldSend(ctx, key)
			if err != nil {
				return err
			}
			if h.Expired { // an earlier attempt of this send found it stale
				s.held = ReasonExpired
				return nil
			}
			cur.HeldSince = h.Since
		}
		if cur.HeldSince.IsZero() {
			return nil
		}
		grace := s.a.ResumeGrace
		if grace <= 0 {
			grace = DefaultResumeGrace
		}
		// Held since before the resume, for longer than the grace: stale.
		expired := c.Since.Sub(cur.HeldSince) > grace
		if expired {
			s.held = ReasonExpired
		}
		cur.HeldSince = time.Time{} // decided: a later pause starts afresh
		if err := s.a.Controls.DecideHeldSend(ctx, key, expired); err != nil {
			return err
		}
	}
	return nil
}
