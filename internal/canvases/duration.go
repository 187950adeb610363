package canvases

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a span of time written the way operators write it: 45s, 30m,
// 36h, 3d, 2w, or a combination such as 1d12h. Days are 24 hours and weeks 7
// days; calendar-aware waits use `until` instead.
type Duration time.Duration

var durationUnits = map[byte]time.Duration{
	's': time.Second,
	'm': time.Minute,
	'h': time.Hour,
	'd': 24 * time.Hour,
	'w': 7 * 24 * time.Hour,
}

// maxDuration keeps arithmetic on durations far from overflow: ten years is
// longer than any campaign.
const maxDuration = 10 * 365 * 24 * time.Hour

// ParseDuration parses 45s, 30m, 36h, 3d, 2w or combinations like 1d12h.
func ParseDuration(s string) (Duration, error) {
	in := s
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration; write it like 30m, 36h or 3d")
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i == len(s) {
			return 0, fmt.Errorf("invalid duration %q; write it like 45s, 30m, 36h, 3d or 2w", in)
		}
		n, err := strconv.ParseInt(s[:i], 10, 64)
		unit, ok := durationUnits[s[i]]
		if err != nil || !ok {
			return 0, fmt.Errorf("invalid duration %q; units are s, m, h, d and w (e.g. 45s, 30m, 36h, 3d, 2w)", in)
		}
		if n > int64(maxDuration/unit) {
			return 0, fmt.Errorf("duration %q is too long (more than ten years)", in)
		}
		total += time.Duration(n) * unit
		if total > maxDuration {
			return 0, fmt.Errorf("duration %q is too long (more than ten years)", in)
		}
		s = s[i+1:]
	}
	return Duration(total), nil
}

// String prints the duration in the largest units that divide it exactly.
func (d Duration) String() string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	rest := time.Duration(d)
	if rest < 0 {
		b.WriteByte('-')
		rest = -rest
	}
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{7 * 24 * time.Hour, "w"}, {24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := rest / u.unit; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			rest -= n * u.unit
		}
	}
	if rest > 0 {
		fmt.Fprintf(&b, "%dns", rest)
	}
	return b.String()
}

// Std returns the duration as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// MarshalJSON writes the canonical form, so 72h and 3d hash the same.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads the form written by MarshalJSON.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}
