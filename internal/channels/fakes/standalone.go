package fakes

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Standalone is a provider fake `huabu fake NAME` runs on its own, so
// `huabu dev` can send through the real channel code to this machine. Each
// fake registers itself (RegisterStandalone, from its file's init); the
// command is a loop over Standalones.
type Standalone struct {
	Name  string // the command's argument and the provider name: aliyun, tencent, ...
	Title string // "Aliyun SMS"
	Doc   string // one line for the command's help: what it speaks
	Addr  string // default listen address (examples/huabu-fakes.yaml points at it)
	Unit  string // what its recipients are called in the summary: numbers, users ...
	// FailKinds are the permanent failures --fail can script, the first
	// the default; FailDoc says what they mean, for the help.
	FailKinds []string
	FailDoc   string
	// FailKind, when set, accepts or refuses a kind (webhook: any 4xx
	// status) instead of FailKinds; alias maps a kind's other name.
	FailKind func(kind string) (string, bool)
	Start    func(StandaloneOptions) (*Running, error)
}

// StandaloneOptions are the command's flags a fake reads.
type StandaloneOptions struct {
	Addr, Key, Secret, SDKAppID string
	// Fails maps recipients that fail for good to their failure kind.
	Fails map[string]string
}

// Running is a started standalone fake.
type Running struct {
	URL    string
	Config string // the channels: line that sends to it
	Close  func()
	OnCall func(func(Call))
	Faults *Faults
	Ledger *Ledger
	// Summarize prints one call as a line and the provider codes it answered.
	Summarize func(Call) (line string, codes []string)
}

var standalones = struct {
	sync.Mutex
	m map[string]Standalone
}{m: map[string]Standalone{}}

// RegisterStandalone adds a fake to `huabu fake`.
func RegisterStandalone(s Standalone) {
	standalones.Lock()
	defer standalones.Unlock()
	if _, dup := standalones.m[s.Name]; dup {
		panic("fakes: standalone " + s.Name + " registered twice")
	}
	standalones.m[s.Name] = s
}

// Standalones lists the registered fakes by default address.
func Standalones() []Standalone {
	standalones.Lock()
	defer standalones.Unlock()
	out := make([]Standalone, 0, len(standalones.m))
	for _, s := range standalones.m {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out
}

// StandaloneFake returns the registered fake of a name.
func StandaloneFake(name string) (Standalone, bool) {
	standalones.Lock()
	defer standalones.Unlock()
	s, ok := standalones.m[name]
	return s, ok
}

// Kind checks a --fail kind: "" is the default kind.
func (s Standalone) Kind(k string) (string, bool) {
	if k == "" {
		if len(s.FailKinds) == 0 {
			return "", false
		}
		k = s.FailKinds[0]
	}
	if s.FailKind != nil {
		return s.FailKind(k)
	}
	for _, a := range s.FailKinds {
		if a == k {
			return k, true
		}
	}
	return k, false
}

// CountList prints counts as "OK 5, isv.CUSTOMER_REFUSED 1", largest first.
func CountList(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// recipientList prints a list of numbers or ids, at most three of them.
func recipientList(list []string) string {
	if len(list) <= 3 {
		return strings.Join(list, ",")
	}
	return fmt.Sprintf("%s,… (%d)", strings.Join(list[:3], ","), len(list))
}

func noAnswer(call Call) (string, bool) {
	if call.Status == 0 {
		return fmt.Sprintf("no answer (held %s)", call.Elapsed.Round(time.Millisecond)), true
	}
	return "", false
}

// nationalNumber drops a +86 / 0086 / 86 prefix from a mainland number.
func nationalNumber(s string) string {
	s = strings.NewReplacer(" ", "", "-", "").Replace(s)
	for _, p := range []string{"+86", "0086"} {
		if strings.HasPrefix(s, p) {
			return s[len(p):]
		}
	}
	if len(s) == 13 && strings.HasPrefix(s, "861") {
		return s[2:]
	}
	return s
}

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
