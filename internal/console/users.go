package console

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/huabu/huabu/internal/server"
	"github.com/huabu/huabu/internal/store"
)

// User is what the user page shows: the profile document, the newest
// events, and the journey through the runs they entered.
type User struct {
	ID      string
	Doc     map[string]any
	Events  []store.EventRow
	Journey []store.JourneyRun
}

// UserReader is the part of Backend the user pages read.
type UserReader interface {
	// FindUser returns the user id of a user id, phone number or WeCom
	// external userid (server.ErrNotFound when none matches).
	FindUser(ctx context.Context, query string) (string, error)
	User(ctx context.Context, id string) (User, error)
}

// timelineItem is one line of a run in a user's journey.
type timelineItem struct {
	At      time.Time
	Kind    string // entered, step, sent, failed, suppressed, unknown, pending, exited, converted
	Step    string
	Channel string
	Reason  string
	Ref     string
	Text    string
}

type journeyRun struct {
	store.JourneyRun
	Path  []store.JourneyStep // the steps reached, in the plan's order
	Items []timelineItem
}

type userData struct {
	User    User
	Fields  []field // attributes, in name order
	Traits  []field
	RFM     []field
	Tags    []string
	Events  []eventLine
	Journey []journeyRun
}

type field struct{ Name, Value string }

type eventLine struct {
	store.EventRow
	Props string
}

// usersPage finds a user: ?q= is a user id, phone or WeCom external id.
func (c *Console) usersPage(w http.ResponseWriter, r *http.Request, v *view) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q != "" {
		id, err := c.b.FindUser(r.Context(), q)
		if err == nil {
			http.Redirect(w, r, "/users/"+url.PathEscape(id), http.StatusSeeOther)
			return
		}
		if !errors.Is(err, server.ErrNotFound) {
			c.failErr(w, r, err)
			return
		}
	}
	v.Title, v.Data = tr(v.Lang, "Users"), struct{ Query string }{q}
	code := http.StatusOK
	if q != "" {
		code = http.StatusNotFound
	}
	c.render(w, code, "users", v)
}

// userPage shows one user's profile, events and journey timeline.
func (c *Console) userPage(w http.ResponseWriter, r *http.Request, v *view) {
	u, err := c.b.User(r.Context(), r.PathValue("id"))
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	data := userData{User: u}
	for name, val := range u.Doc {
		switch name {
		case "traits":
			data.Traits = fields(val)
		case "rfm":
			data.RFM = fields(val)
		case "tags":
			if list, ok := val.([]any); ok {
				for _, t := range list {
					if s, ok := t.(string); ok {
						data.Tags = append(data.Tags, s)
					}
				}
			}
		default:
			data.Fields = append(data.Fields, field{name, show(val)})
		}
	}
	sort.Slice(data.Fields, func(i, j int) bool { return data.Fields[i].Name < data.Fields[j].Name })
	for _, e := range u.Events {
		data.Events = append(data.Events, eventLine{EventRow: e, Props: string(e.Properties)})
	}
	for _, j := range u.Journey {
		data.Journey = append(data.Journey, journeyRun{JourneyRun: j, Path: c.path(r, j), Items: timeline(j)})
	}
	v.Title, v.Data = u.ID, data
	c.render(w, http.StatusOK, "user", v)
}

// timeline orders what happened to a user in one run.
func timeline(j store.JourneyRun) []timelineItem {
	items := []timelineItem{{At: j.EnteredAt, Kind: "entered"}}
	for _, d := range j.Deliveries {
		items = append(items, timelineItem{At: d.At, Kind: d.State, Step: d.StepID, Channel: d.Channel, Reason: d.Reason, Ref: d.ProviderRef, Text: d.Text})
	}
	if e := j.Exit; e != nil {
		items = append(items, timelineItem{At: e.At, Kind: "exited", Step: e.StepID, Reason: e.Reason})
	}
	if !j.Converted.IsZero() {
		items = append(items, timelineItem{At: j.Converted, Kind: "converted"})
	}
	// Entering comes first; the rest in time order.
	rest := items[1:]
	sort.SliceStable(rest, func(a, b int) bool { return rest[a].At.Before(rest[b].At) })
	return items
}

func fields(v any) []field {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	out := make([]field, 0, len(m))
	for k, x := range m {
		out = append(out, field{k, show(x)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func show(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// path orders the steps a user reached by the run's plan (then visit).
func (c *Console) path(r *http.Request, j store.JourneyRun) []store.JourneyStep {
	order := map[string]int{}
	if p, err := c.b.CanvasPlan(r.Context(), j.CanvasID, shortPlan(j.PlanHash)); err == nil {
		for i, s := range p.Steps {
			order[s.ID] = i
		}
	}
	out := append([]store.JourneyStep(nil), j.Steps...)
	sort.SliceStable(out, func(a, b int) bool {
		if out[a].Visit != out[b].Visit {
			return out[a].Visit < out[b].Visit
		}
		return order[out[a].StepID] < order[out[b].StepID]
	})
	return out
}

func shortPlan(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
