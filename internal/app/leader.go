package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/huabu/huabu/internal/store"
)

// Router leadership (ADR 022). Every worker stores events; exactly one
// routes them: the holder of the router lease in the store. It renews the
// lease every leaseRenew; a worker that cannot renew for leaseStepDown stops
// routing, well before the lease expires (leaseTTL), so two routers never
// overlap while the clocks agree to within a few seconds. When the leader
// dies, the others take the lease within leaseTTL + leaseRenew (12 s) and
// resume from the store: the feed's cursor, the persisted entry windows
// and their marks. A graceful stop releases the lease at once.

const (
	routerLease   = "router"
	leaseTTL      = 10 * time.Second
	leaseRenew    = 2 * time.Second
	leaseStepDown = 6 * time.Second
)

// leaseStore is the part of the store leases live in.
type leaseStore interface {
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (store.Lease, bool, error)
	RenewLease(ctx context.Context, name, holder string, term int64, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string, term int64) error
}

// leadership runs lead while this process holds a lease.
type leadership struct {
	st     leaseStore
	name   string
	holder string
	log    *slog.Logger
	// lead starts the leader's work (resumed before it returns when now);
	// stop ends it: lost when the lease was lost (stop without finishing
	// anything), else this process is stopping while it holds the lease
	// (finish, then it is released).
	lead func(ctx context.Context, term int64, now bool) (stop func(lost bool), err error)

	ttl, renew, stepDown time.Duration
	now                  func() time.Time
}

// newLeadership: holder names this process's holdings (holderID() when it
// has no stable identity; workerIdentity for one that keeps its data
// directory across restarts, so a restarted worker takes back its own
// unexpired lease at once).
func newLeadership(st leaseStore, name, holder string, log *slog.Logger, lead func(ctx context.Context, term int64, now bool) (func(lost bool), error)) *leadership {
	return &leadership{st: st, name: name, holder: holder, log: log, lead: lead,
		ttl: leaseTTL, renew: leaseRenew, stepDown: leaseStepDown, now: time.Now}
}

// holderID names this process among the store's workers (one whose data
// directory is not its own: a new name at each start).
func holderID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}

// tryOnce takes the lease if it is free and starts leading; it returns the
// term taken, or 0. When leading fails to start the lease is released.
func (l *leadership) tryOnce(ctx context.Context, now bool) (term int64, stop func(lost bool), err error) {
	lease, ok, err := l.st.AcquireLease(ctx, l.name, l.holder, l.ttl)
	if err != nil || !ok {
		return 0, nil, err
	}
	l.log.Info("took the lease: this worker routes events", "lease", l.name, "term", lease.Term, "holder", l.holder)
	if stop, err = l.lead(ctx, lease.Term, now); err != nil {
		_ = l.st.ReleaseLease(context.WithoutCancel(ctx), l.name, l.holder, lease.Term)
		return 0, nil, err
	}
	return lease.Term, stop, nil
}

// run holds the lease while it can and tries to take it while it cannot,
// until ctx ends; then it stops leading and releases the lease. term/stop
// are a holding tryOnce started (term 0: none).
func (l *leadership) run(ctx context.Context, term int64, stop func(lost bool)) {
	tick := time.NewTicker(l.renew)
	defer tick.Stop()
	renewed := l.now()
	for {
		select {
		case <-ctx.Done():
			if term != 0 {
				stop(false)
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				if err := l.st.ReleaseLease(rctx, l.name, l.holder, term); err != nil {
					l.log.Warn("releasing the lease; it expires by itself", "lease", l.name, "err", err)
				}
				cancel()
			}
			return
		case <-tick.C:
		}
		if term == 0 {
			var err error
			if term, stop, err = l.tryOnce(ctx, false); err != nil && ctx.Err() == nil {
				l.log.Warn("taking the lease", "lease", l.name, "err", err)
			}
			renewed = l.now()
			continue
		}
		// The new expiry counts from before the call (the store reads its
		// clock during it): step down on that basis, not on the return.
		asked := l.now()
		rctx, cancel := context.WithTimeout(ctx, l.renew)
		ok, err := l.st.RenewLease(rctx, l.name, l.holder, term, l.ttl)
		cancel()
		switch {
		case err == nil && ok:
			renewed = asked
			continue
		case err == nil:
			l.log.Error("lost the lease (it expired and was taken): this worker stops routing", "lease", l.name, "term", term)
		case l.now().Sub(renewed) >= l.stepDown:
			l.log.Error("could not renew the lease in time: this worker stops routing before it expires", "lease", l.name, "term", term, "err", err)
		default:
			l.log.Warn("renewing the lease; trying again", "lease", l.name, "err", err)
			continue
		}
		stop(true)
		term, stop = 0, nil
	}
}
