// Package gcpolicy sets the Go garbage collector's policy of a Huabu
// process at start (ADR 055): more heap between collections than Go's
// default, and a soft memory limit under the container's, unless the
// operator set GOGC or GOMEMLIMIT, which always win.
package gcpolicy
