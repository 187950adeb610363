package embedded

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

func TestSlogLogger(t *testing.T) {
	tests := []struct {
		name     string
		stopping bool
		log      func(log.Logger)
		want     string
	}{
		{"info is below the default level", false,
			func(l log.Logger) { l.Info("started") }, ""},
		{"warn passes with tags", false,
			func(l log.Logger) { l.Warn("slow", tag.NewStringTag("shard", "1")) },
			"level=WARN msg=slow shard=1\n"},
		{"With prepends tags", false,
			func(l log.Logger) {
				log.With(l, tag.NewStringTag("svc", "history")).Error("boom", tag.Error(errors.New("disk")))
			},
			"level=ERROR msg=boom svc=history error=disk\n"},
		{"fatal is an error and does not exit", false,
			func(l log.Logger) { l.Fatal("bad") }, "level=ERROR msg=bad\n"},
		{"known benign warning is demoted", false,
			func(l log.Logger) { l.Warn("HTTP API port has not been set. Nexus ...") }, ""},
		{"cancellation while stopping is dropped", true,
			func(l log.Logger) { l.Error("poll failed", tag.Error(errors.New("context canceled"))) }, ""},
		{"other errors while stopping pass", true,
			func(l log.Logger) { l.Error("flush failed", tag.Error(errors.New("disk full"))) },
			"level=ERROR msg=\"flush failed\" error=\"disk full\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			h := slog.NewTextHandler(&buf, &slog.HandlerOptions{
				Level: slog.LevelDebug,
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey {
						return slog.Attr{}
					}
					return a
				},
			})
			l := newSlogLogger(slog.New(h), slog.LevelWarn)
			if tt.stopping {
				l.setStopping()
			}
			tt.log(l)
			require.Equal(t, tt.want, buf.String())
		})
	}
}

func TestSlogLoggerLevelAppliesToSLog(t *testing.T) {
	var buf bytes.Buffer
	l := newSlogLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), slog.LevelWarn)
	l.SLog().Info("hidden")
	require.Empty(t, buf.String(), "server code that extracts the slog logger must see the same level")
}
