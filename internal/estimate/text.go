package estimate

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText prints an estimate for people.
func (r *Result) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "%s (plan %s, %s trigger) — as of %s\n", r.CanvasID, r.Plan, r.Trigger, r.At.Format(time.RFC3339))
	if r.Exact {
		fmt.Fprintf(w, "profiles: %d, every one evaluated (%d ms)\n", r.Profiles, r.Elapsed)
	} else {
		fmt.Fprintf(w, "profiles: ≈%d; %d evaluated in %d ms, a random sample: counts are scaled up, ± is the 95%% margin (--exact counts every one)\n",
			r.Profiles, r.Evaluated, r.Elapsed)
	}
	fmt.Fprintf(w, "audience: %s match", r.Matched)
	if r.ReentryBlocks > 0 {
		fmt.Fprintf(w, "; %s would enter (%d kept out by the re-entry rule)\n", r.Entering, r.ReentryBlocks)
	} else {
		fmt.Fprintf(w, "; %s would enter\n", r.Entering)
	}
	if e := r.Event; e != nil {
		fmt.Fprintf(w, "trigger %s since %s: %s users sent it; %s of them would have entered\n",
			e.Event, e.Since.Format(time.RFC3339), e.Sent, e.Entering)
	}
	if len(r.Channels) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CHANNEL\tTO\tSTEPS\tREACHABLE\tUNREACHABLE\tCAPPED NOW\tSUPPRESSED NOW\tQUIET HOURS NOW")
		for _, c := range r.Channels {
			name := c.Channel
			if c.Role != "" {
				name += " (" + strings.ReplaceAll(c.Role, "_", " ") + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\t%d\n", name, c.To, strings.Join(c.Steps, ", "), c.Reach,
				byReason(c.Unreach, c.Reasons), c.Capped, byReason(-1, c.Suppressed), c.Delayed)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.Sample) > 0 {
		fmt.Fprintln(w, "\nsample of entering users:")
		for _, s := range r.Sample {
			line := "  " + s.ID
			if len(s.Fields) > 0 {
				b, _ := json.Marshal(s.Fields)
				line += "  " + string(b)
			}
			fmt.Fprintln(w, line)
		}
	}
	return nil
}

// byReason prints "12 (no_address 10, no_owner 2)"; total -1 adds them up.
func byReason(total int64, rs []Reason) string {
	if total < 0 {
		total = 0
		for _, r := range rs {
			total += r.N
		}
	}
	if len(rs) == 0 {
		return fmt.Sprint(total)
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%s %d", r.Reason, r.N)
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}
