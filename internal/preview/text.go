package preview

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/huabu/huabu/internal/canvases"
)

// WriteText prints messages for a person: per user, each step's channel,
// recipient and message, or why nothing would be sent.
func WriteText(w io.Writer, msgs []Message) error {
	var users []string
	byUser := map[string][]Message{}
	for _, m := range msgs {
		if _, ok := byUser[m.User]; !ok {
			users = append(users, m.User)
		}
		byUser[m.User] = append(byUser[m.User], m)
	}
	var b strings.Builder
	for _, u := range users {
		fmt.Fprintf(&b, "  %s\n", u)
		for _, m := range byUser[u] {
			head := fmt.Sprintf("    %s  %s", m.Step, m.Channel)
			if m.To != "" {
				head += " → " + m.To
			}
			if m.Unsent != "" {
				fmt.Fprintf(&b, "%s  not sent: %s\n", head, m.Unsent)
				continue
			}
			b.WriteString(head + "\n")
			for _, line := range MessageLines(m.Message) {
				fmt.Fprintf(&b, "      %s\n", line)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// MessageLines are the parts of a message a person reads, one per line.
func MessageLines(m *canvases.Message) []string {
	if m == nil {
		return nil
	}
	var out []string
	add := func(label, v string) {
		if v == "" {
			return
		}
		for i, line := range strings.Split(v, "\n") {
			if i == 0 {
				out = append(out, label+line)
			} else {
				out = append(out, strings.Repeat(" ", len([]rune(label)))+line)
			}
		}
	}
	add("subject: ", m.Subject)
	add("title: ", m.Title)
	add("", m.Text)
	add("", m.Markdown)
	add("", m.Description)
	if m.HTML != "" {
		add("html: ", clip(m.HTML, 200))
	}
	add("url: ", m.URL)
	if m.Template != "" {
		var params []string
		for _, k := range slices.Sorted(maps.Keys(m.Params)) {
			params = append(params, k+"="+m.Params[k])
		}
		add("template: ", strings.TrimSpace(m.SignName+" "+m.Template+" "+strings.Join(params, " ")))
	}
	for _, k := range slices.Sorted(maps.Keys(m.Data)) {
		add("data: ", k+"="+m.Data[k])
	}
	for _, a := range m.Attachments {
		add("attachment: ", strings.TrimSpace(a.Type+" "+a.Title+" "+a.URL))
	}
	return out
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
