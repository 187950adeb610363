package canvases

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"45s": 45 * time.Second, "30m": 30 * time.Minute, "36h": 36 * time.Hour,
		"3d": 72 * time.Hour, "2w": 14 * 24 * time.Hour, "1d12h": 36 * time.Hour, " 5m ": 5 * time.Minute,
	} {
		d, err := ParseDuration(in)
		require.NoError(t, err, in)
		require.Equal(t, want, d.Std(), in)
	}
	for _, in := range []string{"", "3", "d", "3 days", "1.5h", "-3d", "3x", "99999999999999999999d", "522w1d"} {
		_, err := ParseDuration(in)
		require.Error(t, err, in)
	}
}

func TestDurationString(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 72 * time.Hour: "3d", 36 * time.Hour: "1d12h", 90 * time.Minute: "1h30m", 15 * 24 * time.Hour: "2w1d",
	} {
		require.Equal(t, want, Duration(d).String())
		back, err := ParseDuration(want)
		require.NoError(t, err)
		require.Equal(t, d, back.Std())
	}
}
