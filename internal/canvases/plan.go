package canvases

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
)

// PlanFormat is the version of the Plan JSON layout. The engine refuses plans
// of a format it does not know.
const PlanFormat = 1

// Plan is a compiled canvas: immutable, JSON-serialisable, identified by the
// hash of its content. The engine runs plans, never YAML. Defaults are
// resolved, so two canvases that mean the same thing (72h and 3d, different
// key order, comments) compile to the same hash.
type Plan struct {
	Format      int      `json:"format"`
	ID          string   `json:"id"`
	Name        string   `json:"name,omitempty"`
	Description string   `json:"description,omitempty"`
	Trigger     Trigger  `json:"trigger"`
	Audience    string   `json:"audience,omitempty"` // expr condition over user; "" = everyone
	Entry       Entry    `json:"entry"`
	Exit        *OnEvent `json:"exit,omitempty"`
	Goal        *Goal    `json:"goal,omitempty"`
	Policy      Policy   `json:"policy"`
	Steps       []*Step  `json:"steps"`

	// Hash is the hex SHA-256 of the plan's JSON without this field.
	Hash string `json:"hash,omitempty"`
}

// Trigger kinds.
const (
	TriggerSchedule = "schedule"
	TriggerEvent    = "event"
	TriggerManual   = "manual"
)

type Trigger struct {
	Kind     string    `json:"kind"`
	Schedule *Schedule `json:"schedule,omitempty"`
	Event    *OnEvent  `json:"event,omitempty"`
	// WhilePaused is what becomes of an event trigger's entries while the
	// canvas is paused: "" keeps them (and the hash of plans written
	// before), drop drops them.
	WhilePaused string `json:"while_paused,omitempty"`
}

// Event entries while the canvas is paused (trigger.event.while_paused).
const (
	WhilePausedKeep = "keep"
	WhilePausedDrop = "drop"
)

// DropsEntriesWhilePaused reports whether events that come while the canvas
// is paused enter nobody.
func (p *Plan) DropsEntriesWhilePaused() bool {
	return p.Trigger.Kind == TriggerEvent && p.Trigger.WhilePaused == WhilePausedDrop
}

type Schedule struct {
	Cron     string `json:"cron,omitempty"`
	At       string `json:"at,omitempty"` // RFC 3339, UTC
	Timezone string `json:"timezone"`
	Start    string `json:"start,omitempty"`
	End      string `json:"end,omitempty"`
	// Overlap is what happens when a run is due while earlier ones still
	// go on; "" is allow (and keeps the hash of plans written before).
	Overlap string `json:"overlap,omitempty"`
}

// Overlap policies of a schedule.
const (
	OverlapAllow     = "allow"
	OverlapSkip      = "skip"
	OverlapBufferOne = "buffer_one"
)

// OverlapPolicy is the schedule's overlap policy, allow when unset.
func (s *Schedule) OverlapPolicy() string {
	if s.Overlap == "" {
		return OverlapAllow
	}
	return s.Overlap
}

// OnEvent matches a track event by name and an optional condition over
// event and user.
type OnEvent struct {
	Event string `json:"event"`
	When  string `json:"when,omitempty"`
}

type Goal struct {
	OnEvent
	Within Duration `json:"within"`
}

// Re-entry rules.
const (
	ReentryNever  = "never"
	ReentryAlways = "always"
	ReentryAfter  = "after"
)

type Entry struct {
	Reentry string   `json:"reentry"`
	After   Duration `json:"after,omitempty"`
}

type Policy struct {
	Kind       string      `json:"kind"` // marketing | transactional
	QuietHours *QuietHours `json:"quiet_hours,omitempty"`
	Frequency  *Frequency  `json:"frequency,omitempty"`
}

// QuietHours overrides the config's; Off turns them off for the canvas.
type QuietHours struct {
	Off    bool   `json:"off,omitempty"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
	Action string `json:"action,omitempty"`
}

// Frequency overrides the config's caps; Off turns them off for the canvas.
type Frequency struct {
	Off   bool            `json:"off,omitempty"`
	Rules []FrequencyRule `json:"rules,omitempty"`
}

type FrequencyRule struct {
	Channel string   `json:"channel"`
	Max     int      `json:"max"`
	Per     Duration `json:"per"`
}

// Step kinds.
const (
	StepPush      = "push"
	StepWait      = "wait"
	StepBranch    = "branch"
	StepSplit     = "split"
	StepTag       = "tag"
	StepStaffTask = "staff_task"
	StepExit      = "exit"
)

// Step is one node of the plan. Next is resolved: "" means the canvas ends
// after this step.
type Step struct {
	ID        string      `json:"id"`
	Name      string      `json:"name,omitempty"`
	Kind      string      `json:"kind"`
	Next      string      `json:"next,omitempty"`
	Push      *Push       `json:"push,omitempty"`
	Wait      *Wait       `json:"wait,omitempty"`
	Branch    []BranchArm `json:"branch,omitempty"`
	Split     []SplitArm  `json:"split,omitempty"`
	Tag       *Tag        `json:"tag,omitempty"`
	StaffTask *StaffTask  `json:"staff_task,omitempty"`
	Exit      *ExitStep   `json:"exit,omitempty"`
}

// Message is the content of a push; which fields a channel reads is in the
// channel catalogue.
type Message struct {
	Text        string            `json:"text,omitempty"`
	Title       string            `json:"title,omitempty"`
	Markdown    string            `json:"markdown,omitempty"`
	Description string            `json:"description,omitempty"`
	URL         string            `json:"url,omitempty"`
	Image       string            `json:"image,omitempty"`
	Template    string            `json:"template,omitempty"`
	Params      map[string]string `json:"params,omitempty"`
	SignName    string            `json:"sign_name,omitempty"`
	Subject     string            `json:"subject,omitempty"`
	HTML        string            `json:"html,omitempty"`
	Data        map[string]string `json:"data,omitempty"`
	Attachments []Attachment      `json:"attachments,omitempty"`
	ChatID      string            `json:"chat_id,omitempty"`
}

type Attachment struct {
	Type        string `json:"type"`
	Title       string `json:"title,omitempty"`
	URL         string `json:"url,omitempty"`
	Image       string `json:"image,omitempty"`
	Description string `json:"description,omitempty"`
	AppID       string `json:"appid,omitempty"`
	Page        string `json:"page,omitempty"`
	MediaID     string `json:"media_id,omitempty"`
}

// Recipients of a push.
const (
	ToUser        = "user"
	ToOwner       = "owner"
	ToOwnerLeader = "owner.leader"
)

type Push struct {
	Channel string `json:"channel"`
	To      string `json:"to"`
	Message
	Fallback *Fallback `json:"fallback,omitempty"`
}

type Fallback struct {
	Channel string `json:"channel"`
	Message
}

// Wait kinds.
const (
	WaitDuration = "duration"
	WaitUntil    = "until" // a time of day in each user's zone
	WaitAt       = "at"    // a fixed instant
	WaitEvent    = "event"
)

type Wait struct {
	Kind      string   `json:"kind"`
	Duration  Duration `json:"duration,omitempty"`
	Until     string   `json:"until,omitempty"`    // HH:MM
	Timezone  string   `json:"timezone,omitempty"` // fixed zone for until; "" = each user's
	At        string   `json:"at,omitempty"`       // RFC 3339, UTC
	Event     string   `json:"event,omitempty"`
	When      string   `json:"when,omitempty"`
	Timeout   Duration `json:"timeout,omitempty"`
	OnTimeout string   `json:"on_timeout,omitempty"`
}

// BranchArm: When == "" marks the else arm, always last.
type BranchArm struct {
	When string `json:"when,omitempty"`
	Goto string `json:"goto"`
}

type SplitArm struct {
	Weight int    `json:"weight"`
	Goto   string `json:"goto"`
	Name   string `json:"name"`
}

type Tag struct {
	Add    []string `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
}

// Staff task targets.
const (
	StaffToCustomers = "customers"
	StaffToStaff     = "staff"
)

type StaffTask struct {
	To          string       `json:"to"`
	Text        string       `json:"text"`
	Attachments []Attachment `json:"attachments,omitempty"`
	Notice      string       `json:"notice,omitempty"`
	Deadline    Duration     `json:"deadline,omitempty"`
	DeadlineAt  string       `json:"deadline_at,omitempty"` // HH:MM
	Remind      []string     `json:"remind,omitempty"`      // durations (canonical) or HH:MM
	EscalateTo  string       `json:"escalate_to"`
}

type ExitStep struct {
	Reason string `json:"reason,omitempty"`
}

// Step returns the step with the given id, or nil. Plans have tens of steps,
// so a scan is cheaper than keeping an index in an immutable value.
func (p *Plan) Step(id string) *Step {
	for _, s := range p.Steps {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// Start is the id of the first step.
func (p *Plan) Start() string {
	if len(p.Steps) == 0 {
		return ""
	}
	return p.Steps[0].ID
}

// ShortHash is the first 12 hex digits of the hash, for display.
func (p *Plan) ShortHash() string {
	if len(p.Hash) < 12 {
		return p.Hash
	}
	return p.Hash[:12]
}

// ComputeHash returns the content hash of the plan (ignoring Hash itself).
func (p *Plan) ComputeHash() string {
	c := *p
	c.Hash = ""
	b, err := json.Marshal(&c)
	if err != nil {
		panic(fmt.Sprintf("canvases: plan does not marshal: %v", err)) // only plain data types: cannot happen
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// JSON returns the plan's canonical JSON.
func (p *Plan) JSON() []byte {
	b, _ := json.Marshal(p)
	return b
}

// UnmarshalPlan reads a plan written by JSON and checks its hash and format.
func UnmarshalPlan(b []byte) (*Plan, error) {
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	if p.Format != PlanFormat {
		return nil, fmt.Errorf("plan %s: format %d is not supported (want %d)", p.ID, p.Format, PlanFormat)
	}
	if got := p.ComputeHash(); got != p.Hash {
		return nil, fmt.Errorf("plan %s: content does not match its hash %s", p.ID, p.ShortHash())
	}
	return &p, nil
}

// LoopSteps are the steps on a loop (a goto back to an earlier step): users
// can visit them more than once in a run, and each visit is its own.
func (p *Plan) LoopSteps() map[string]bool {
	index := map[string]int{}
	for i, s := range p.Steps {
		index[s.ID] = i
	}
	edges := make([][]int, len(p.Steps))
	for i, s := range p.Steps {
		for _, t := range successors(s) {
			if j, ok := index[t]; ok {
				edges[i] = append(edges[i], j)
			}
		}
	}
	out := map[string]bool{}
	for _, comp := range stronglyConnected(len(p.Steps), func(i int) []int { return edges[i] }) {
		if len(comp) > 1 || slices.Contains(edges[comp[0]], comp[0]) {
			for _, i := range comp {
				out[p.Steps[i].ID] = true
			}
		}
	}
	return out
}
