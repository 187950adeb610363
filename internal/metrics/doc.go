// Package metrics is what /metrics shows an SRE beyond deliveries and HTTP:
// provider calls (latency, errors by the provider's code), activity
// latency (the work behind each step), and from the store at each scrape
// the runs by canvas and state, users entering steps, cohorts and users
// waiting, staff tasks by state, and the lag from an event to the run it
// started. The worker wires them: Providers into the channels, Activities
// into the Temporal worker, Store onto the HTTP server's registry.
package metrics
