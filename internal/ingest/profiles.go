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
	"strconv"
	"strings"
	"time"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/store"
)

// ProfileStore is where profiles go.
type ProfileStore interface {
	UpsertProfiles(ctx context.Context, updates []store.ProfileUpdate) (int, error)
}

// Reject is one input line that was not imported.
type Reject struct {
	Line    int    `json:"line"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (r Reject) String() string {
	if r.Field != "" {
		return fmt.Sprintf("line %d: %s: %s", r.Line, r.Field, r.Message)
	}
	return fmt.Sprintf("line %d: %s", r.Line, r.Message)
}

// Summary is the outcome of an import.
type Summary struct {
	Imported int           `json:"imported"`
	Rejected []Reject      `json:"rejected,omitempty"`
	Elapsed  time.Duration `json:"elapsed"`
}

// Rate is rows imported per second.
func (s Summary) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Imported) / s.Elapsed.Seconds()
}

// Options tune an import.
type Options struct {
	// Progress, when set, is called after each batch with rows read so far.
	Progress func(rows int)
	// MaxRejects stops the import after this many rejects (0: 1000); the
	// rows before are kept, as an import is resumable by re-running it.
	MaxRejects int
	Batch      int // rows per store write (default 2000)
}

// Identify is the part of a Segment identify payload profiles use.
type Identify struct {
	Type        string          `json:"type"`
	UserID      json.RawMessage `json:"userId"`
	AnonymousID json.RawMessage `json:"anonymousId"`
	Traits      map[string]any  `json:"traits"`
}

// Profiles validates identify payloads against a schema and builds merge
// patches. It is shared by file imports and the HTTP identify endpoint.
type Profiles struct {
	Schema canvases.Schema
}

// Patch checks one profile's traits and returns its merge patch. Traits the
// schema does not declare are kept (they are data, and a later schema may
// declare them); declared ones must have the declared type.
func (p Profiles) Patch(userID string, traits map[string]any) ([]byte, *Reject) {
	if strings.TrimSpace(userID) == "" {
		return nil, &Reject{Field: "userId", Message: "userId is required"}
	}
	if len(userID) > 256 {
		return nil, &Reject{Field: "userId", Message: "userId is longer than 256 characters"}
	}
	doc := make(map[string]any, len(traits)+1)
	for _, k := range sortedKeys(traits) {
		v := traits[k]
		switch k {
		case "id", "userId":
			continue // the profile's id is userId
		case "traits", "rfm":
			return nil, &Reject{Field: "traits." + k, Message: fmt.Sprintf("%q is computed by Huabu and cannot be set", k)}
		case "tags":
			if !canvases.CheckValue(canvases.TypeList, v) {
				return nil, &Reject{Field: "traits.tags", Message: "tags must be a list of strings"}
			}
		default:
			t, declared := p.Schema.Attributes[k]
			if !declared && slices.Contains(canvases.ReservedAttributes, k) {
				t, declared = canvases.TypeString, true
			}
			if declared && !canvases.CheckValue(t, v) {
				return nil, &Reject{Field: "traits." + k, Message: fmt.Sprintf("expected %s, got %s", describeType(t), describeValue(v))}
			}
			if declared && (t == canvases.TypeDate || t == canvases.TypeTime) && v != nil {
				// Store one spelling of dates so expressions compare them reliably.
				tv, _ := canvases.ParseTimeValue(v)
				if t == canvases.TypeDate {
					v = tv.Format("2006-01-02")
				} else {
					v = tv.UTC().Format(time.RFC3339Nano)
				}
			}
		}
		doc[k] = v
	}
	doc["id"] = userID
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, &Reject{Message: err.Error()}
	}
	return b, nil
}

func describeType(t canvases.FieldType) string {
	switch t {
	case canvases.TypeDate:
		return "a date (2006-01-02)"
	case canvases.TypeTime:
		return "a time (RFC 3339)"
	case canvases.TypeList:
		return "a list of strings"
	case canvases.TypeInteger:
		return "a whole number"
	}
	return "a " + string(t)
}

func describeValue(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprint(v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// UserID reads a Segment id, which may be a string or a number.
func UserID(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	if s, ok := quickString(raw); ok {
		return s, true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), true
	}
	return "", false
}

// ImportProfiles reads JSONL identify payloads or CSV (detected from the
// first non-blank byte: '{' is JSONL) and upserts them.
func ImportProfiles(ctx context.Context, st ProfileStore, schema canvases.Schema, r io.Reader, opts Options) (Summary, error) {
	start := time.Now()
	if opts.Batch <= 0 {
		opts.Batch = 2000
	}
	if opts.MaxRejects <= 0 {
		opts.MaxRejects = 1000
	}
	br := bufio.NewReaderSize(r, 1<<20)
	first, err := peekNonBlank(br)
	if err != nil {
		return Summary{}, err
	}
	imp := &importer{ctx: ctx, st: st, p: Profiles{Schema: schema}, opts: opts}
	if first == '{' {
		err = imp.jsonl(br)
	} else {
		err = imp.csv(br)
	}
	if ferr := imp.flush(); err == nil {
		err = ferr
	}
	imp.sum.Elapsed = time.Since(start)
	return imp.sum, err
}

func peekNonBlank(br *bufio.Reader) (byte, error) {
	for i := 1; ; i++ {
		b, err := br.Peek(i)
		if len(b) < i {
			if errors.Is(err, io.EOF) {
				return 0, nil
			}
			return 0, err
		}
		c := b[i-1]
		if c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == 0xEF || c == 0xBB || c == 0xBF {
			continue
		}
		return c, nil
	}
}

// ErrTooManyRejects stops an import whose input is mostly wrong.
var ErrTooManyRejects = errors.New("too many rejected rows; stopped")

type importer struct {
	ctx   context.Context
	st    ProfileStore
	p     Profiles
	opts  Options
	batch []store.ProfileUpdate
	sum   Summary
	rows  int
}

func (im *importer) reject(line int, r Reject) error {
	r.Line = line
	im.sum.Rejected = append(im.sum.Rejected, r)
	if len(im.sum.Rejected) >= im.opts.MaxRejects {
		return ErrTooManyRejects
	}
	return nil
}

func (im *importer) add(id string, patch []byte) error {
	im.batch = append(im.batch, store.ProfileUpdate{ID: id, Patch: patch})
	if len(im.batch) >= im.opts.Batch {
		return im.flush()
	}
	return nil
}

func (im *importer) flush() error {
	if len(im.batch) == 0 {
		return nil
	}
	n, err := im.st.UpsertProfiles(im.ctx, im.batch)
	im.sum.Imported += n
	im.batch = im.batch[:0]
	if im.opts.Progress != nil {
		im.opts.Progress(im.rows)
	}
	return err
}

func (im *importer) jsonl(br *bufio.Reader) error {
	line := 0
	for {
		raw, err := br.ReadBytes('\n')
		if len(raw) > 0 {
			line++
			im.rows++
			if rerr := im.jsonLine(line, bytes.TrimSpace(raw)); rerr != nil {
				return rerr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (im *importer) jsonLine(line int, raw []byte) error {
	if len(raw) == 0 {
		return nil
	}
	var id Identify
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&id); err != nil {
		return im.reject(line, Reject{Message: "invalid JSON: " + jsonMessage(err)})
	}
	if id.Type != "" && id.Type != "identify" {
		return im.reject(line, Reject{Field: "type", Message: fmt.Sprintf("expected an identify payload, got type %q", id.Type)})
	}
	userID, ok := UserID(id.UserID)
	if !ok {
		return im.reject(line, Reject{Field: "userId", Message: "userId must be a string"})
	}
	if userID == "" {
		return im.reject(line, Reject{Field: "userId", Message: "userId is required (profiles are keyed by it; anonymousId alone is not enough)"})
	}
	patch, rej := im.p.Patch(userID, id.Traits)
	if rej != nil {
		return im.reject(line, *rej)
	}
	return im.add(userID, patch)
}

func jsonMessage(err error) string {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "the line ends in the middle of the JSON value"
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	}
	return err.Error()
}

// csv reads a header row naming user_id and traits; values are converted to
// the schema's types (lists are separated by |).
func (im *importer) csv(br *bufio.Reader) error {
	r := csv.NewReader(br)
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("line 1: %w", err)
	}
	header = slices.Clone(header)
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff") // Excel's BOM
	}
	idCol := slices.Index(header, "user_id")
	if idCol < 0 {
		idCol = slices.Index(header, "userId")
	}
	if idCol < 0 {
		return fmt.Errorf("line 1: the header has no user_id column")
	}
	line := 1
	for {
		rec, err := r.Read()
		line++
		if errors.Is(err, io.EOF) {
			return nil
		}
		im.rows++
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				if rerr := im.reject(pe.Line, Reject{Message: pe.Err.Error()}); rerr != nil {
					return rerr
				}
				continue
			}
			return err
		}
		line, _ = r.FieldPos(0)
		if len(rec) != len(header) {
			if rerr := im.reject(line, Reject{Message: fmt.Sprintf("%d values for %d columns", len(rec), len(header))}); rerr != nil {
				return rerr
			}
			continue
		}
		traits := make(map[string]any, len(rec))
		var bad *Reject
		for i, v := range rec {
			if i == idCol || v == "" {
				continue
			}
			val, rej := im.csvValue(header[i], v)
			if rej != nil {
				bad = rej
				break
			}
			traits[header[i]] = val
		}
		if bad != nil {
			if rerr := im.reject(line, *bad); rerr != nil {
				return rerr
			}
			continue
		}
		userID := rec[idCol]
		patch, rej := im.p.Patch(userID, traits)
		if rej != nil {
			if rerr := im.reject(line, *rej); rerr != nil {
				return rerr
			}
			continue
		}
		if err := im.add(userID, patch); err != nil {
			return err
		}
	}
}

// csvValue converts a CSV cell to the declared type of its column.
func (im *importer) csvValue(col, v string) (any, *Reject) {
	t := im.p.Schema.Attributes[col]
	if col == "tags" {
		t = canvases.TypeList
	}
	bad := func() *Reject {
		return &Reject{Field: col, Message: fmt.Sprintf("expected %s, got %q", describeType(t), v)}
	}
	switch t {
	case canvases.TypeNumber:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return nil, bad()
		}
		return f, nil
	case canvases.TypeInteger:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return nil, bad()
		}
		return float64(n), nil
	case canvases.TypeBool:
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return nil, bad()
		}
		return b, nil
	case canvases.TypeList:
		parts := strings.Split(v, "|")
		out := make([]any, 0, len(parts))
		for _, p := range parts {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out, nil
	}
	return v, nil
}
