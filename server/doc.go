// Package server is Huabu's HTTP API: health and metrics for SREs, the admin
// API (canvases, reports, runs, deploys) for operators and tools, and — as
// the roadmap adds them — Segment-compatible ingestion for apps and the WeCom
// callback. Errors are JSON with the field at fault:
// {"error": "...", "field": "..."}, 4xx for the caller's mistakes.
package server
