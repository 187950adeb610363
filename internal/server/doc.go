// Package server is Huabu's HTTP API: health and metrics for SREs, the admin
// API (canvases, reports, runs, deploys, estimates, previews, suppressions)
// for operators and tools, the WeCom callback and SMS reply endpoints, and
// the routes of Segment-compatible ingestion (package ingest does the work).
// Errors are JSON with the field at fault:
// {"error": "...", "field": "..."}, 4xx for the caller's mistakes.
package server
