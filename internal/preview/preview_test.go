package preview_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/preview"
)

func TestMark(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     canvases.Message
		want   canvases.Message
		marked bool
	}{
		{"text", canvases.Message{Text: "你好"}, canvases.Message{Text: "[TEST] 你好"}, true},
		{"push title and text", canvases.Message{Title: "提醒", Text: "t", URL: "app://x"}, canvases.Message{Title: "[TEST] 提醒", Text: "[TEST] t", URL: "app://x"}, true},
		{"email subject, html left alone", canvases.Message{Subject: "s", HTML: "<p>h</p>"}, canvases.Message{Subject: "[TEST] s", HTML: "<p>h</p>"}, true},
		{"markdown", canvases.Message{Markdown: "**m**"}, canvases.Message{Markdown: "[TEST] **m**"}, true},
		{"sms template: the provider's text", canvases.Message{Template: "SMS_1", Params: map[string]string{"name": "n"}}, canvases.Message{Template: "SMS_1", Params: map[string]string{"name": "n"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			got, marked := preview.Mark(&in)
			require.Equal(t, tc.marked, marked)
			require.Equal(t, tc.want, *got)
			require.Equal(t, tc.in, in, "the original is not changed")
		})
	}
}
