package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/huabu/huabu/internal/store"
)

// EventSummary is the outcome of an event import.
type EventSummary struct {
	Summary
	Duplicates int `json:"duplicates"` // lines whose message was already stored
}

// ImportEvents reads JSONL track payloads ({"userId", "event",
// "properties", "timestamp", optional "messageId"}) and stores them in
// batches. Every line is checked like an HTTP track call, and a timestamp is
// required: an import is history. Imported events are not handed to the
// engine (they would start journeys for old purchases); the touched users
// are marked due, so the caller recomputes their traits afterwards
// (traits.Engine.RefreshDue). Lines without a messageId are keyed by a hash
// of the line, so re-running an import stores nothing twice.
func ImportEvents(ctx context.Context, st EventStore, v *Validator, r io.Reader, opts Options) (EventSummary, error) {
	start := time.Now()
	if opts.Batch <= 0 {
		opts.Batch = 5000
	}
	if opts.MaxRejects <= 0 {
		opts.MaxRejects = 1000
	}
	var sum EventSummary
	batch := make([]store.Message, 0, opts.Batch)
	rows := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		res, err := st.Ingest(ctx, batch, store.IngestOptions{MarkDue: true})
		if err != nil {
			return err
		}
		sum.Imported += res.Stored
		sum.Duplicates += res.Duplicates
		batch = batch[:0]
		if opts.Progress != nil {
			opts.Progress(rows)
		}
		return nil
	}
	br := bufio.NewReaderSize(r, 1<<20)
	now := time.Now()
	var err error
	for line := 1; ; line++ {
		raw, rerr := br.ReadBytes('\n')
		if raw = bytes.TrimSpace(raw); len(raw) > 0 {
			rows++
			if line == 1 {
				raw = bytes.TrimPrefix(raw, []byte("\ufeff"))
			}
			var p Parsed
			var fe *FieldError
			if t := typeOf(raw); t != "" && t != "track" {
				fe = &FieldError{Field: "type", Message: "expected a track payload, got type " + strconv.Quote(t)}
			} else if p, fe = v.parse(raw, parseOptions{kind: "track", now: now, needTimestamp: true}); fe == nil && p.Message.UserID == "" {
				fe = &FieldError{Field: "userId", Message: "userId is required (an import names its users)"}
			}
			if fe != nil {
				sum.Rejected = append(sum.Rejected, Reject{Line: line, Field: fe.Field, Message: fe.Message})
				if len(sum.Rejected) >= opts.MaxRejects {
					err = ErrTooManyRejects
					break
				}
			} else {
				batch = append(batch, p.Message)
				if len(batch) >= opts.Batch {
					if err = flush(); err != nil {
						break
					}
				}
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	if ferr := flush(); err == nil {
		err = ferr
	}
	sum.Elapsed = time.Since(start)
	return sum, err
}

// typeOf reads the type field of a payload, if any.
func typeOf(raw []byte) string {
	var m struct {
		Type string `json:"type"`
	}
	if bytes.Contains(raw, []byte(`"type"`)) {
		_ = json.Unmarshal(raw, &m)
	}
	return m.Type
}
