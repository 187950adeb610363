package fakes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"
)

// Per-sender faults of add_msg_template, for the staff SOP loop's tests:
// one staff member whose task WeCom refuses (or refuses for a while) while
// the others' go through, and a task that WeCom creates but whose answer
// never arrives — the caller crashed or timed out between WeCom acting and
// the caller recording it.

// SenderFault is how add_msg_template fails for one sender.
type SenderFault struct {
	// Errcode is answered instead of creating the task: 60111 (userid not
	// found) or 40003 are refusals, -1 (system busy) is transient.
	Errcode int
	// HangAfterCreate creates the task, then holds the answer until the
	// client gives up, the fake closes or Hang passes.
	HangAfterCreate bool
	// HangBeforeCreate holds the call without creating anything.
	HangBeforeCreate bool
	// Times is how many calls fail; 0 means every call.
	Times int
}

// FailSender makes add_msg_template calls for sender fail as sf says.
func (f *WeCom) FailSender(sender string, sf SenderFault) {
	f.mu.Lock()
	if f.senderFaults == nil {
		f.senderFaults = map[string]*SenderFault{}
	}
	f.senderFaults[sender] = &sf
	f.mu.Unlock()
}

// senderFault returns and uses up the fault for sender's next call; f.mu held.
func (f *WeCom) senderFault(sender string) (SenderFault, bool) {
	sf := f.senderFaults[sender]
	if sf == nil {
		return SenderFault{}, false
	}
	out := *sf
	if sf.Times > 0 {
		sf.Times--
		if sf.Times == 0 {
			delete(f.senderFaults, sender)
		}
	}
	return out, true
}

// withSenderFaults wraps add_msg_template: for a sender whose fault is
// HangAfterCreate, the task is created and the answer withheld; for
// HangBeforeCreate, the call is held and nothing created.
func (f *WeCom) withSenderFaults(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req struct {
			Sender string `json:"sender"`
		}
		_ = json.Unmarshal(body, &req)
		f.mu.Lock()
		sf, ok := f.senderFaults[req.Sender]
		after, before := ok && sf.HangAfterCreate, ok && sf.HangBeforeCreate
		if after || before {
			f.senderFault(req.Sender)
		}
		f.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		switch {
		case after:
			next(httptest.NewRecorder(), r)
			f.hang(r)
		case before:
			f.record(r, body)
			f.hang(r)
		default:
			next(w, r)
		}
	}
}

// senderRefusal is the errcode to answer for sender instead of creating a
// task, or 0; f.mu held.
func (f *WeCom) senderRefusal(sender string) int {
	if sf, ok := f.senderFaults[sender]; ok && sf.Errcode != 0 && !sf.HangAfterCreate && !sf.HangBeforeCreate {
		f.senderFault(sender)
		return sf.Errcode
	}
	return 0
}

// TasksFor lists the mass-send tasks created for one sender.
func (f *WeCom) TasksFor(sender string) []Task {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Task
	for _, t := range f.tasks {
		if t.Sender == sender {
			out = append(out, t)
		}
	}
	return out
}

// CreateCalls counts add_msg_template requests per sender, whatever their
// outcome (from the request log).
func (f *WeCom) CreateCalls() map[string]int {
	out := map[string]int{}
	for _, r := range f.Requests() {
		if r.Path != "/cgi-bin/externalcontact/add_msg_template" {
			continue
		}
		var req struct {
			Sender string `json:"sender"`
		}
		_ = json.Unmarshal(r.Body, &req)
		out[req.Sender]++
	}
	return out
}

// ReminderTimes lists when a task was reminded (remind_groupmsg_send).
func (f *WeCom) ReminderTimes(msgID string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.staff.reminders[msgID]...)
}

// logf reports what happened to Log, if set; f.mu held.
func (f *WeCom) logf(format string, args ...any) {
	if f.Log != nil {
		f.Log(fmt.Sprintf(format, args...))
	}
}

// summary is s on one line, cut to n characters.
func summary(s string, n int) string {
	r := []rune(strings.ReplaceAll(s, "\n", " / "))
	if len(r) <= n {
		return string(r)
	}
	return string(r[:n]) + "…"
}
