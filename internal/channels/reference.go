package channels

import (
	"fmt"
	"strings"
)

// Reference returns docs/channels.md, generated from the registered specs.
func Reference() string {
	var b strings.Builder
	b.WriteString(`# Channels

<!-- Generated from the channel specs in internal/channels/*.go by ` + "`go test ./internal/channels -run TestReference -update`" + `. Do not edit. -->

Each channel of the canvas language (` + "`push: {channel: ...}`" + `) is sent by the provider configured
under ` + "`channels:`" + ` in huabu.yaml; a channel with no section goes to the outbox. Values may be
` + "`${ENV_VAR}`" + ` references, so secrets stay out of the file.

Every provider maps its error codes to four classes: *retry later* (rate limits, with the wait the
provider asks for), *retry now* (transient: 5xx, a connection reset before the request was sent),
*permanent* for the recipient (invalid user, not a friend, unsubscribed — suppressed, never retried)
and *ambiguous* (a timeout after the request left, or a worker that died mid-call: maybe sent). The last
column says what Huabu does with an ambiguous delivery; [delivery.md](delivery.md) explains it and what an
operator does about ` + "`unknown`" + `.

| channel | provider | per call (same content / mixed) | groups identical content | one sender per call | maybe sent (timeout, crash) |
| --- | --- | --- | --- | --- | --- |
`)
	for _, s := range Specs() {
		fmt.Fprintf(&b, "| `%s` | `%s` | %d / %d | %s | %s | %s |\n", s.Name, s.Provider, s.BatchLimit(true), s.BatchLimit(false), yes(s.Groupable), yes(s.SameSender), guarantee(s))
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

// guarantee says what happens to a delivery whose call may have got through.
func guarantee(s Spec) string {
	switch s.IdempotencyKey {
	case "":
		return "reported `unknown`, never resent: at most once"
	case "cid":
		return fmt.Sprintf("resent with the same cid (JPush drops it) within %d h: exactly once", int(s.KeyLife.Hours()))
	case "duplicate_check":
		return "resent inside WeCom's duplicate check (`duplicate_check_interval`): exactly once"
	}
	return "resent with the same `" + s.IdempotencyKey + "`: exactly once"
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
