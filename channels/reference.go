package channels

import (
	"fmt"
	"strings"
)

// Reference returns docs/channels.md, generated from the registered specs.
func Reference() string {
	var b strings.Builder
	b.WriteString(`# Channels

<!-- Generated from the channel specs in channels/*.go by ` + "`go test ./channels -run TestReference -update`" + `. Do not edit. -->

Each channel of the canvas language (` + "`push: {channel: ...}`" + `) is sent by the provider configured
under ` + "`channels:`" + ` in huabu.yaml; a channel with no section goes to the outbox. Values may be
` + "`${ENV_VAR}`" + ` references, so secrets stay out of the file.

Every provider maps its error codes to four classes: *retry later* (rate limits, with the wait the
provider asks for), *retry now* (transient: 5xx, a connection reset before the request was sent),
*permanent* for the recipient (invalid user, not a friend, unsubscribed — suppressed, never retried)
and *ambiguous* (a timeout after the request left: recorded as unknown, not resent — unless the
provider drops resends itself, as JPush cids and WeCom's duplicate check do).

| channel | provider | per call (same content / mixed) | groups identical content | one sender per call |
| --- | --- | --- | --- | --- |
`)
	for _, s := range Specs() {
		fmt.Fprintf(&b, "| `%s` | `%s` | %d / %d | %s | %s |\n", s.Name, s.Provider, s.BatchLimit(true), s.BatchLimit(false), yes(s.Groupable), yes(s.SameSender))
	}
	for _, s := range Specs() {
		if s.Provider == "outbox" {
			continue
		}
		section := sectionOf(s.Name)
		fmt.Fprintf(&b, "\n## `%s` via %s\n\n%s\n", s.Name, s.Provider, s.Doc)
		if len(s.Config) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n```yaml\nchannels:\n  %s:\n", section)
		if section == "sms" || section == "push" || section == "email" || section == "webhook" {
			fmt.Fprintf(&b, "    provider: %s\n", s.Provider)
		}
		for _, f := range s.Config {
			val := f.Default
			switch {
			case f.Secret:
				val = "${" + strings.ToUpper(strings.ReplaceAll(section+"_"+f.Name, ".", "_")) + "}"
			case val == "":
				val = "..."
			}
			fmt.Fprintf(&b, "    %s: %s\n", f.Name, val)
		}
		b.WriteString("```\n\n| setting | required | default | |\n| --- | --- | --- | --- |\n")
		for _, f := range s.Config {
			req := ""
			if f.Required {
				req = "yes"
			}
			doc := f.Doc
			if f.Secret {
				doc += " (secret: never logged)"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", f.Name, req, code(f.Default), doc)
		}
	}
	return b.String()
}

func yes(v bool) string {
	if v {
		return "yes"
	}
	return ""
}

func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + s + "`"
}

// sectionOf names the config section of a catalogue channel.
func sectionOf(name string) string {
	if strings.HasPrefix(name, "wecom.") {
		return "wecom"
	}
	return name
}
