package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/huabu/huabu/internal/store"
)

// StaffDirectoryStore is where the staff directory goes.
type StaffDirectoryStore interface {
	UpsertStaff(ctx context.Context, staff []store.Staff) error
}

// ImportStaff reads a staff directory as JSONL ({"userid","name","grid",
// "leader"}) or CSV with those columns, and upserts it.
func ImportStaff(ctx context.Context, st StaffDirectoryStore, r io.Reader) (Summary, error) {
	start := time.Now()
	br := bufio.NewReader(r)
	first, err := peekNonBlank(br)
	if err != nil {
		return Summary{}, err
	}
	var sum Summary
	var staff []store.Staff
	accept := func(line int, m store.Staff) {
		m.UserID = strings.TrimSpace(m.UserID)
		switch {
		case m.UserID == "":
			sum.Rejected = append(sum.Rejected, Reject{Line: line, Field: "userid", Message: "userid is required"})
		case m.Leader == m.UserID:
			sum.Rejected = append(sum.Rejected, Reject{Line: line, Field: "leader", Message: "a staff member cannot lead themselves"})
		default:
			staff = append(staff, m)
		}
	}
	if first == '{' {
		sc := bufio.NewScanner(br)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for line := 1; sc.Scan(); line++ {
			raw := bytes.TrimSpace(sc.Bytes())
			if len(raw) == 0 {
				continue
			}
			var m store.Staff
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&m); err != nil {
				sum.Rejected = append(sum.Rejected, Reject{Line: line, Message: "invalid JSON: " + jsonMessage(err)})
				continue
			}
			accept(line, m)
		}
		if err := sc.Err(); err != nil {
			return sum, err
		}
	} else {
		cr := csv.NewReader(br)
		cr.FieldsPerRecord = -1
		header, err := cr.Read()
		if err != nil && !errors.Is(err, io.EOF) {
			return sum, fmt.Errorf("line 1: %w", err)
		}
		col := func(name string) int { return slices.Index(header, name) }
		if len(header) > 0 {
			header[0] = strings.TrimPrefix(header[0], "\ufeff")
		}
		if col("userid") < 0 {
			return sum, fmt.Errorf("line 1: the header has no userid column")
		}
		get := func(rec []string, name string) string {
			if i := col(name); i >= 0 && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		for {
			rec, err := cr.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			line, _ := cr.FieldPos(0)
			if err != nil {
				sum.Rejected = append(sum.Rejected, Reject{Line: line, Message: err.Error()})
				continue
			}
			accept(line, store.Staff{UserID: get(rec, "userid"), Name: get(rec, "name"), Grid: get(rec, "grid"), Leader: get(rec, "leader")})
		}
	}
	if err := st.UpsertStaff(ctx, staff); err != nil {
		return sum, err
	}
	sum.Imported = len(staff)
	sum.Elapsed = time.Since(start)
	return sum, nil
}
