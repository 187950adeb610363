package channels

import (
	"context"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/huabu/huabu/internal/canvases"
)

// Results collects one Outcome per delivery of a batch while a channel makes
// several provider calls. It remembers which outcomes came from a failed
// call (rather than from the provider's verdict on a recipient), so that a
// batch where every call failed the same way is returned as one *Error —
// the Channel contract's "nothing in the batch was decided".
type Results struct {
	mu    sync.Mutex
	outs  []Outcome
	errs  []*Error
	unset []bool
}

func NewResults(n int) *Results {
	r := &Results{outs: make([]Outcome, n), errs: make([]*Error, n), unset: make([]bool, n)}
	for i := range r.unset {
		r.unset[i] = true
	}
	return r
}

func (r *Results) set(i int, o Outcome) {
	r.mu.Lock()
	r.outs[i], r.errs[i], r.unset[i] = o, nil, false
	r.mu.Unlock()
}

func (r *Results) Sent(i int, ref string) { r.set(i, Outcome{Status: Sent, ProviderRef: ref}) }

// Fail records a per-recipient verdict of the provider.
func (r *Results) Fail(i int, e *Error) { r.set(i, outcomeOf(e)) }

// CallFailed records that the call carrying delivery i failed as a whole.
func (r *Results) CallFailed(i int, e *Error) {
	r.mu.Lock()
	r.outs[i], r.errs[i], r.unset[i] = outcomeOf(e), e, false
	r.mu.Unlock()
}

// Finish returns the outcomes, or the shared error when every delivery's
// call failed with the same class and reason.
func (r *Results) Finish() ([]Outcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, u := range r.unset {
		if u { // a code path forgot a delivery: never report it as sent
			r.outs[i] = Outcome{Status: Unknown, Class: Ambiguous, Reason: ReasonConnectionLost, Detail: "no result recorded"}
			r.errs[i] = nil
		}
	}
	if len(r.errs) > 0 && r.errs[0] != nil {
		first := r.errs[0]
		same := true
		for _, e := range r.errs[1:] {
			if e == nil || e.Class != first.Class || e.Reason != first.Reason {
				same = false
				break
			}
		}
		if same {
			return nil, first
		}
	}
	return r.outs, nil
}

// outcomeOf turns a classified failure into a delivery's outcome.
func outcomeOf(e *Error) Outcome {
	st := Failed
	if e.Class == Ambiguous {
		st = Unknown
	}
	detail := e.Message
	if e.Code != "" {
		detail = e.Code + ": " + detail
	}
	return Outcome{Status: st, Class: e.Class, Reason: e.Reason, Detail: detail, Code: e.Code, RetryAfter: e.RetryAfter}
}

// GroupByContent splits delivery indexes by MessageKey (and sender when
// bySender), keeping the first-seen order so provider calls are stable.
func GroupByContent(ds []Delivery, bySender bool) [][]int {
	idx := map[string]int{}
	var groups [][]int
	// Deliveries of one unpersonalised message share its pointer: its key
	// (a JSON encoding and a hash) is computed once, not per recipient.
	var last *canvases.Message
	lastKey := ""
	for i, d := range ds {
		if d.Message != last || i == 0 {
			last, lastKey = d.Message, MessageKey(d.Message)
		}
		k := lastKey
		if bySender {
			k += "\x00" + d.Recipient.Sender
		}
		g, ok := idx[k]
		if !ok {
			g = len(groups)
			idx[k] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups
}

// Chunks splits idxs into runs of at most n.
func Chunks(idxs []int, n int) [][]int {
	if n <= 0 {
		n = len(idxs)
	}
	var out [][]int
	for len(idxs) > n {
		out = append(out, idxs[:n])
		idxs = idxs[n:]
	}
	if len(idxs) > 0 {
		out = append(out, idxs)
	}
	return out
}

// Parallel runs fn(0..n-1) with at most limit in flight; it stops starting
// new work once ctx is done (fn sees the context and reports that itself).
func Parallel(ctx context.Context, n, limit int, fn func(i int)) {
	if limit <= 1 || n <= 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		acquired := true
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			acquired = false // run it anyway: fn fails fast on a done context
		}
		wg.Add(1)
		go func(i int, acquired bool) {
			defer wg.Done()
			if acquired {
				defer func() { <-sem }()
			}
			fn(i)
		}(i, acquired)
	}
	wg.Wait()
}

// mask hides most of an address for logs: phone numbers keep the first 3
// and last 4 digits, emails the first letter and the domain, other ids
// their first 3 characters.
func mask(addr string) string {
	if at := strings.LastIndexByte(addr, '@'); at > 0 {
		r, _ := utf8.DecodeRuneInString(addr)
		return string(r) + "***" + addr[at:]
	}
	digits := 0
	for _, c := range addr {
		if c >= '0' && c <= '9' {
			digits++
		}
	}
	if digits >= 7 && digits >= len(addr)-1 {
		return addr[:3] + "****" + addr[len(addr)-4:]
	}
	if len(addr) <= 3 {
		return "***"
	}
	return addr[:3] + "***"
}

// Pick returns the deliveries at idxs; Remap maps indexes into that slice
// back to the batch's.
func Pick(ds []Delivery, idxs []int) []Delivery {
	out := make([]Delivery, len(idxs))
	for k, i := range idxs {
		out[k] = ds[i]
	}
	return out
}

func Remap(idxs, local []int) []int {
	out := make([]int, len(local))
	for k, l := range local {
		out[k] = idxs[l]
	}
	return out
}

// SleepCtx waits d or until ctx is done.
func SleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
