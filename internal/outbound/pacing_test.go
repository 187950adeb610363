package outbound

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNextSlot(t *testing.T) {
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return now.Add(d) }
	for _, tc := range []struct {
		name               string
		booked             []time.Time
		perMinute, perHour int
		want               time.Time
	}{
		{"nothing booked", nil, 2, 10, now},
		{"no limits", []time.Time{at(-time.Second), at(0)}, 0, 0, now},
		{"below both limits", []time.Time{at(-30 * time.Second)}, 2, 10, now},
		{"after the last booked slot", []time.Time{at(5 * time.Second)}, 2, 10, at(5 * time.Second)},
		{"minute full: when the oldest of the last two leaves the minute", []time.Time{at(-40 * time.Second), at(-10 * time.Second)}, 2, 10, at(20 * time.Second)},
		{"hour full", []time.Time{at(-50 * time.Minute), at(-30 * time.Minute), at(-5 * time.Minute)}, 0, 3, at(10 * time.Minute)},
		{"the later of the two limits", []time.Time{at(-59 * time.Minute), at(-20 * time.Second), at(-10 * time.Second)}, 2, 3, at(time.Minute)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, NextSlot(tc.booked, now, tc.perMinute, tc.perHour))
		})
	}
}
