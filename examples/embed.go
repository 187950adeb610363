// Package examples holds the example config, canvases, profiles and staff
// directory. The binary embeds them, so `huabu dev` runs on a fresh machine
// with no files at all, and tests validate every example canvas.
package examples

import "embed"

// FS holds huabu.yaml, canvases/*.yaml, profiles.jsonl, staff.jsonl and
// events.jsonl (purchase history, so RFM and computed traits have data).
//
//go:embed huabu.yaml canvases/*.yaml profiles.jsonl staff.jsonl staff-profiles.jsonl events.jsonl
var FS embed.FS
