package activities

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/huabu/huabu/internal/store"
)

// Metrics are the counters SREs alert on: deliveries by channel, outcome
// and reason. A nil *Metrics records nothing (tests, benchmarks).
type Metrics struct {
	deliveries *prometheus.CounterVec
}

// NewMetrics makes the delivery metrics; register Collectors() where
// /metrics is served.
func NewMetrics() *Metrics {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "huabu_deliveries_total",
			Help: "Messages decided by push steps, by channel, state (sent, failed, suppressed, unknown) and reason.",
		}, []string{"channel", "state", "reason"}),
	}
	return m
}

// Collectors are the metrics to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.deliveries}
}

// settled counts a page's outcomes, one counter update per distinct label
// set rather than per recipient.
func (m *Metrics) settled(channel string, settle []store.Settlement) {
	if m == nil || len(settle) == 0 {
		return
	}
	type key struct{ channel, state, reason string }
	counts := map[key]float64{}
	for _, st := range settle {
		ch := st.Channel
		if ch == "" {
			ch = channel // a fallback channel names itself
		}
		counts[key{ch, st.State, st.Reason}]++
	}
	for k, n := range counts {
		m.deliveries.WithLabelValues(k.channel, k.state, k.reason).Add(n)
	}
}
