package embedded

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

// slogLogger adapts the server's log.Logger interface to log/slog.
//
// Tags are converted only when a record is actually emitted: the server
// builds tagged child loggers on hot paths, and tag.Tag.Value is not cheap.
type slogLogger struct {
	log      *slog.Logger
	level    slog.Leveler
	tags     []tag.Tag
	stopping *atomic.Bool // shared by all loggers of one server
}

// benignWarnings are warnings the server logs on every start of a correctly
// configured embedded server; they are passed on at debug level.
var benignWarnings = []string{
	// Nexus needs the frontend HTTP API, which Huabu does not use or expose.
	"HTTP API port has not been set",
}

var (
	_ log.Logger      = (*slogLogger)(nil)
	_ log.WithLogger  = (*slogLogger)(nil)
	_ log.SLogWrapper = (*slogLogger)(nil)
)

func newSlogLogger(l *slog.Logger, level slog.Leveler) *slogLogger {
	// Filter in the handler too, so that server code that extracts the slog
	// logger through SLog() sees the same level as the adapter.
	return &slogLogger{log: slog.New(levelHandler{l.Handler(), level}), level: level, stopping: new(atomic.Bool)}
}

func (s *slogLogger) Debug(msg string, tags ...tag.Tag) { s.emit(slog.LevelDebug, msg, tags) }
func (s *slogLogger) Info(msg string, tags ...tag.Tag)  { s.emit(slog.LevelInfo, msg, tags) }
func (s *slogLogger) Warn(msg string, tags ...tag.Tag)  { s.emit(slog.LevelWarn, msg, tags) }
func (s *slogLogger) Error(msg string, tags ...tag.Tag) { s.emit(slog.LevelError, msg, tags) }

// DPanic, Panic and Fatal are logged as errors and never panic or exit: an
// embedded server must not take the host process down.
func (s *slogLogger) DPanic(msg string, tags ...tag.Tag) { s.emit(slog.LevelError, msg, tags) }
func (s *slogLogger) Panic(msg string, tags ...tag.Tag)  { s.emit(slog.LevelError, msg, tags) }
func (s *slogLogger) Fatal(msg string, tags ...tag.Tag)  { s.emit(slog.LevelError, msg, tags) }

func (s *slogLogger) With(tags ...tag.Tag) log.Logger {
	all := make([]tag.Tag, 0, len(s.tags)+len(tags))
	all = append(append(all, s.tags...), tags...)
	return &slogLogger{log: s.log, level: s.level, tags: all, stopping: s.stopping}
}

func (s *slogLogger) SLog() *slog.Logger { return s.log }

func (s *slogLogger) emit(level slog.Level, msg string, tags []tag.Tag) {
	if level == slog.LevelWarn {
		for _, benign := range benignWarnings {
			if strings.HasPrefix(msg, benign) {
				level = slog.LevelDebug
			}
		}
	}
	ctx := context.Background()
	if !s.log.Enabled(ctx, level) {
		return
	}
	stopping := s.stopping.Load()
	attrs := make([]slog.Attr, 0, len(s.tags)+len(tags))
	for _, group := range [][]tag.Tag{s.tags, tags} {
		for _, t := range group {
			v := t.Value()
			// While stopping, in-flight calls fail with "context canceled"
			// by design; those errors say nothing about the server's health.
			if stopping && strings.Contains(fmt.Sprint(v), "context canceled") {
				return
			}
			attrs = append(attrs, slog.Any(t.Key(), v))
		}
	}
	s.log.LogAttrs(ctx, level, msg, attrs...)
}

// setStopping marks the server as shutting down (see emit).
func (s *slogLogger) setStopping() { s.stopping.Store(true) }

// levelHandler drops records below a (possibly changing) minimum level.
type levelHandler struct {
	slog.Handler
	level slog.Leveler
}

func (h levelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level.Level() && h.Handler.Enabled(ctx, l)
}

func (h levelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelHandler{h.Handler.WithAttrs(attrs), h.level}
}

func (h levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{h.Handler.WithGroup(name), h.level}
}
