package activities

import (
	"errors"
	"strings"
	"sync"
	"text/template"

	"github.com/huabu/huabu/internal/canvases"
)

// templateCache parses each distinct message text once per plan.
type templateCache struct {
	mu sync.RWMutex
	m  map[string]*parsedTemplate
}

// parsedTemplate is a message text and the fields it prints bare.
type parsedTemplate struct {
	t       *template.Template
	printed []canvases.TemplateField
}

func newTemplateCache() *templateCache { return &templateCache{m: map[string]*parsedTemplate{}} }

func (c *templateCache) get(src string) (*parsedTemplate, error) {
	c.mu.RLock()
	pt, ok := c.m[src]
	c.mu.RUnlock()
	if ok {
		return pt, nil
	}
	t, err := canvases.ParseTemplate(src)
	if err != nil {
		return nil, err
	}
	printed, err := canvases.PrintedFields(src)
	if err != nil {
		return nil, err
	}
	pt = &parsedTemplate{t: t, printed: printed}
	c.mu.Lock()
	c.m[src] = pt
	c.mu.Unlock()
	return pt, nil
}

// renderer renders one recipient's message.
type renderer struct {
	cache *templateCache
	data  map[string]any // normalised: every schema field present and typed
	// raw is the same documents as stored, where a missing field is
	// missing: a text that prints one is refused (a *canvases.MissingDataError).
	raw map[string]any
	buf strings.Builder
	err error
}

// missingData reports whether err is a render refused for a missing field.
func missingData(err error) bool {
	var md *canvases.MissingDataError
	return errors.As(err, &md)
}

// text renders one template field; texts without actions are returned as
// they are, so a broadcast of one fixed text costs nothing per recipient.
func (r *renderer) text(src string) string {
	if r.err != nil || !strings.Contains(src, "{{") {
		return src
	}
	pt, err := r.cache.get(src)
	if err != nil {
		r.err = err
		return ""
	}
	if field, missing := canvases.MissingField(pt.printed, r.raw); missing {
		r.err = &canvases.MissingDataError{Field: field}
		return ""
	}
	r.buf.Reset()
	if err := pt.t.Execute(&r.buf, r.data); err != nil {
		r.err = err
		return ""
	}
	return r.buf.String()
}

func (r *renderer) texts(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = r.text(v)
	}
	return out
}

// message renders every template field of a message.
func (r *renderer) message(m *canvases.Message) (*canvases.Message, error) {
	out := *m
	out.Text, out.Title, out.Markdown = r.text(m.Text), r.text(m.Title), r.text(m.Markdown)
	out.Description, out.URL, out.Image = r.text(m.Description), r.text(m.URL), r.text(m.Image)
	out.Subject, out.HTML = r.text(m.Subject), r.text(m.HTML)
	out.Params, out.Data = r.texts(m.Params), r.texts(m.Data)
	if len(m.Attachments) > 0 {
		out.Attachments = make([]canvases.Attachment, len(m.Attachments))
		for i, at := range m.Attachments {
			at.Title, at.URL, at.Description = r.text(at.Title), r.text(at.URL), r.text(at.Description)
			out.Attachments[i] = at
		}
	}
	return &out, r.err
}

// needsRendering reports whether any field of a message is a template.
func needsRendering(m *canvases.Message) bool {
	has := func(s string) bool { return strings.Contains(s, "{{") }
	if has(m.Text) || has(m.Title) || has(m.Markdown) || has(m.Description) || has(m.URL) || has(m.Image) || has(m.Subject) || has(m.HTML) {
		return true
	}
	for _, v := range m.Params {
		if has(v) {
			return true
		}
	}
	for _, v := range m.Data {
		if has(v) {
			return true
		}
	}
	for _, a := range m.Attachments {
		if has(a.Title) || has(a.URL) || has(a.Description) {
			return true
		}
	}
	return false
}
