package app

import (
	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/config"
)

// policyOf turns the config's policy into the activities' (the config was
// checked when loaded, so durations parse).
func policyOf(p config.PolicyConfig) activities.Policy {
	out := activities.Policy{RequireConsent: p.RequireConsent}
	if q := p.QuietHours; q != nil {
		out.QuietHours = &canvases.QuietHours{From: q.From, To: q.To, Action: q.Action}
	}
	for _, f := range p.Frequency {
		per, _ := canvases.ParseDuration(f.Per)
		out.Frequency = append(out.Frequency, canvases.FrequencyRule{Channel: f.Channel, Max: f.Max, Per: per})
	}
	return out
}
