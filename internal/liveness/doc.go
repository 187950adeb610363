// Package liveness makes every activity heartbeat while its worker is
// alive, so that Temporal notices a dead worker (a SIGKILL, a lost machine)
// within an activity's heartbeat timeout instead of its start-to-close
// timeout, and hands the activity to another worker sooner.
package liveness
