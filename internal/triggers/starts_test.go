package triggers

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/store"
)

// heldStarts is Runs whose starts of the named workflows wait until
// released; the others start at once.
type heldStarts struct {
	*runs
	mu      sync.Mutex
	hold    map[string]chan struct{}
	waiting chan string // a held start began
}

func (h *heldStarts) StartEventRun(ctx context.Context, run EventRun) error {
	h.mu.Lock()
	release := h.hold[run.WorkflowID]
	h.mu.Unlock()
	if release != nil {
		h.waiting <- run.WorkflowID
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return h.runs.StartEventRun(ctx, run)
}

// heldWrites is the store whose next SaveWindowEntries waits until
// released (after saying so on began).
type heldWrites struct {
	*store.SQLite
	mu      sync.Mutex
	release chan struct{}
	began   chan struct{}
}

func (h *heldWrites) holdNext() (began, release chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.began, h.release = make(chan struct{}), make(chan struct{})
	return h.began, h.release
}

func (h *heldWrites) SaveWindowEntries(ctx context.Context, writes []store.WindowWrite) ([]int64, error) {
	h.mu.Lock()
	began, release := h.began, h.release
	h.began, h.release = nil, nil
	h.mu.Unlock()
	if release != nil {
		close(began)
		<-release
	}
	return h.SQLite.SaveWindowEntries(ctx, writes)
}

// TestWindowsStartConcurrently (issue 18, ADR 031): starting a window's run
// waits on the Temporal server and the store; a window due while another
// one's start is slow starts beside it instead of queueing behind it, and
// writing entries into a window holds up no other window's start — yet a
// window whose entries are being written never starts without them.
func TestWindowsStartConcurrently(t *testing.T) {
	ctx := context.Background()

	t.Run("a slow start holds up no other window", func(t *testing.T) {
		f := newWindowsFixture(t)
		held := &heldStarts{runs: f.temporal, hold: map[string]chan struct{}{}, waiting: make(chan string, 1)}
		o := f.options()
		o.Runs = held
		o.Window = 40 * time.Millisecond
		r := f.refreshed(o)
		first := f.signups("u1")
		release := make(chan struct{})
		held.hold[workflowID("welcome", first[0].ID)] = release
		require.NoError(t, r.Route(ctx, first))
		rctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); r.Run(rctx) }()
		f.clock.advance(time.Second)
		require.Equal(t, workflowID("welcome", first[0].ID), <-held.waiting, "the first window's start is under way")

		// Its start hangs; the next window closes and starts meanwhile.
		second := f.signups("u2")
		require.NoError(t, r.Route(ctx, second))
		f.clock.advance(time.Second)
		require.Eventually(t, func() bool { return len(f.temporal.users()) == 1 }, 30*time.Second, 5*time.Millisecond,
			"the second window started while the first one's start hung")
		require.Equal(t, []string{"u2"}, f.temporal.users()[workflowID("welcome", second[0].ID)])
		require.Equal(t, first[0].ID, r.PendingFrom(), "the first window is not started yet")

		close(release)
		stop()
		<-done // Run waits for the starts it launched
		require.Equal(t, map[string][]string{
			workflowID("welcome", first[0].ID):  {"u1"},
			workflowID("welcome", second[0].ID): {"u2"},
		}, f.temporal.users())
		require.Zero(t, r.PendingFrom())
		open, err := f.st.OpenWindows(ctx)
		require.NoError(t, err)
		require.Empty(t, open)
	})

	t.Run("a write of entries holds up no other window, and its own window waits for it", func(t *testing.T) {
		f := newWindowsFixture(t)
		st := &heldWrites{SQLite: f.st}
		o := f.options()
		o.Store = st
		r := f.refreshed(o)
		a := f.signups("u1")
		require.NoError(t, r.Route(ctx, a))
		// A new plan version: the next entries open a window of their own.
		f.deploy("v2")
		require.NoError(t, r.Refresh(ctx))
		b := f.signups("u2")
		began, release := st.holdNext()
		routed := make(chan error, 1)
		go func() { routed <- r.Route(ctx, b) }()
		<-began
		f.clock.advance(2 * time.Second)
		require.Equal(t, 1, r.StartWindows(ctx, false), "the first window starts while the second's entries are written")
		require.Equal(t, []string{"u1"}, f.temporal.users()[workflowID("welcome", a[0].ID)])
		close(release)
		require.NoError(t, <-routed)
		require.Equal(t, 1, r.StartWindows(ctx, false))
		require.Equal(t, []string{"u2"}, f.temporal.users()[workflowID("welcome", b[0].ID)])

		// Entries joining an open window that is due by the time they
		// are written: it starts only once they are, with them.
		c := f.signups("u3")
		require.NoError(t, r.Route(ctx, c))
		d := f.signups("u4")
		began, release = st.holdNext()
		go func() { routed <- r.Route(ctx, d) }()
		<-began
		f.clock.advance(2 * time.Second)
		require.Zero(t, r.StartWindows(ctx, false), "the window is being written to")
		close(release)
		require.NoError(t, <-routed)
		require.Equal(t, 1, r.StartWindows(ctx, false))
		require.Equal(t, []string{"u3", "u4"}, f.temporal.users()[workflowID("welcome", c[0].ID)])
	})
}

// countingReads is the store counting the router's reads of user
// documents and of the runs users are in.
type countingReads struct {
	*store.SQLite
	mu                    sync.Mutex
	profiles, memberships int
}

func (c *countingReads) Profiles(ctx context.Context, uids []int64) ([]store.ProfileRow, error) {
	c.mu.Lock()
	c.profiles++
	c.mu.Unlock()
	return c.SQLite.Profiles(ctx, uids)
}

func (c *countingReads) MembershipsOf(ctx context.Context, uids []int64, since time.Time) ([]store.Membership, error) {
	c.mu.Lock()
	c.memberships++
	c.mu.Unlock()
	return c.SQLite.MembershipsOf(ctx, uids, since)
}

func (c *countingReads) counts() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.profiles, c.memberships
}

// TestRoutingReadsOnlyWhatItUses: an event that only triggers a canvas
// whose trigger does not mention user is routed without reading user
// documents or the runs its users are in; an event some condition reads
// user for, or some plan version (running or not) exits, converts or
// waits on, reads them.
func TestRoutingReadsOnlyWhatItUses(t *testing.T) {
	ctx := context.Background()
	f := newWindowsFixture(t)
	save := func(name, src string) {
		plan, problems := f.comp.Compile(name, []byte(src))
		require.False(t, problems.HasErrors(), problems.Error())
		_, err := f.st.SavePlan(ctx, plan.ID, plan.Hash, plan.JSON(), name)
		require.NoError(t, err)
	}
	// An older plan version of another canvas waits for coupon_used.
	save("coupon.yaml", `
id: coupon
trigger: {manual: {}}
steps:
  - id: wait-use
    wait: {event: coupon_used, timeout: 1d}
  - id: thanks
    push: {channel: outbox, text: 谢谢}
`)
	save("vip.yaml", `
id: vip
trigger: {event: {name: vip_ping, when: '"vip" in user.tags'}}
entry: {reentry: always}
steps:
  - id: hello
    push: {channel: outbox, text: hi}
`)
	st := &countingReads{SQLite: f.st}
	o := f.options()
	o.Store = st
	r := f.refreshed(o)

	require.NoError(t, r.Route(ctx, f.signups("u1", "u2")))
	p, m := st.counts()
	require.Equal(t, [2]int{0, 0}, [2]int{p, m}, "signup only triggers welcome, whose trigger reads no user")
	f.clock.advance(time.Second)
	require.Equal(t, 1, r.StartWindows(ctx, false))
	require.Equal(t, []string{"u1", "u2"}, f.temporal.users()[workflowID("welcome", 1)])

	f.nextID++
	require.NoError(t, r.Route(ctx, []ingest.Event{{ID: f.nextID, UID: 9, UserID: "u9", Name: "coupon_used", Timestamp: f.clock.now()}}))
	p, m = st.counts()
	require.Equal(t, [2]int{0, 1}, [2]int{p, m}, "coupon_used is waited for: the runs of its users are read")

	f.nextID++
	require.NoError(t, r.Route(ctx, []ingest.Event{{ID: f.nextID, UID: 9, UserID: "u9", Name: "vip_ping", Timestamp: f.clock.now()}}))
	p, m = st.counts()
	require.Equal(t, [2]int{1, 1}, [2]int{p, m}, "vip_ping's trigger reads user.tags")
}

// deployWhileRouting is a store whose next PlanHashes returns what it read
// and then, before the router goes on, runs deploy: a deploy and Refresh
// landing between the router's read of what routing needs and its matching
// of the triggers.
type deployWhileRouting struct {
	*store.SQLite
	deploy func()
}

func (d *deployWhileRouting) PlanHashes(ctx context.Context) ([]string, error) {
	hashes, err := d.SQLite.PlanHashes(ctx)
	if f := d.deploy; f != nil {
		d.deploy = nil
		f()
	}
	return hashes, err
}

// TestRoutingMatchesTheTriggersItLoadedUsersFor: a canvas deployed while
// a batch is being routed, whose trigger reads user, is matched with the
// user loaded — not against no user, which would leave out who it wants
// (review of a2d6636).
func TestRoutingMatchesTheTriggersItLoadedUsersFor(t *testing.T) {
	ctx := context.Background()
	f := newWindowsFixture(t)
	_, err := f.st.UpsertProfiles(ctx, []store.ProfileUpdate{{ID: "u7", Patch: []byte(`{"tags":["vip"]}`)}})
	require.NoError(t, err)
	uids, err := f.st.UIDs(ctx, []string{"u7"})
	require.NoError(t, err)
	st := &deployWhileRouting{SQLite: f.st}
	o := f.options()
	o.Store = st
	r := f.refreshed(o)
	st.deploy = func() {
		plan, problems := f.comp.Compile("vip.yaml", []byte(`
id: vip
trigger: {event: {name: signup, when: '"vip" in user.tags'}}
entry: {reentry: always}
steps:
  - id: hello
    push: {channel: outbox, text: hi}
`))
		require.False(t, problems.HasErrors(), problems.Error())
		_, err := f.st.SavePlan(ctx, plan.ID, plan.Hash, plan.JSON(), "vip.yaml")
		require.NoError(t, err)
		require.NoError(t, r.Refresh(ctx))
	}
	f.nextID++
	require.NoError(t, r.Route(ctx, []ingest.Event{{ID: f.nextID, UID: uids["u7"], UserID: "u7", Name: "signup", Timestamp: f.clock.now()}}))
	require.Nil(t, st.deploy, "the deploy ran between the two reads")
	f.clock.advance(time.Second)
	require.Equal(t, 2, r.StartWindows(ctx, false), "welcome and vip")
	require.Equal(t, []string{"u7"}, f.temporal.users()[workflowID("vip", f.nextID)])
}
