package push

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/conflict"
	"github.com/synchub/synchub/hub/syncproto"
)

// pushCtxKey tags a push's context with its batch id, so that gatedStore can tell
// which push reads the schema.
type pushCtxKey struct{}

// gatedStore calls schema with the pushing batch's id (from the context) before
// every read of the change log's state, which a batch run does once its changes are
// decoded and it may decide them (after waiting for the batch it follows).
type gatedStore struct {
	*changelog.SQLiteStore
	schema func(batch string)
}

func (g *gatedStore) State(ctx context.Context) (changelog.State, error) {
	if b, ok := ctx.Value(pushCtxKey{}).(string); ok && g.schema != nil {
		g.schema(b)
	}
	return g.SQLiteStore.State(ctx)
}

// holdDecide makes the env's store stop the run of batch before it decides anything,
// until release is closed; entered is closed when it got there.
func holdDecide(d *Deps, batch string) (entered, release chan struct{}) {
	entered, release = make(chan struct{}), make(chan struct{})
	d.Store = &gatedStore{SQLiteStore: d.Store.(*changelog.SQLiteStore), schema: func(b string) {
		if b == batch {
			close(entered)
			<-release
		}
	}}
	return entered, release
}

// trace records the steps of concurrent pushes in the order they happened.
type trace struct {
	mu    sync.Mutex
	steps []string
}

func (tr *trace) add(step string) {
	tr.mu.Lock()
	tr.steps = append(tr.steps, step)
	tr.mu.Unlock()
}

func (tr *trace) all() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.steps)
}

type pushResult struct {
	resp syncproto.PushResponse
	err  error
}

// pushAsync runs a push in its own goroutine; its context carries the batch id.
func (e *env) pushAsync(req syncproto.PushRequest) <-chan pushResult {
	ch := make(chan pushResult, 1)
	go func() {
		resp, err := e.svc.Push(context.WithValue(context.Background(), pushCtxKey{}, req.BatchID), req)
		ch <- pushResult{resp, err}
	}()
	return ch
}

// appliedBatches returns the batch ids the central database was asked to write, in order.
func (e *env) appliedBatches() []string {
	e.db.mu.Lock()
	defer e.db.mu.Unlock()
	var ids []string
	for _, a := range e.db.applies {
		ids = append(ids, a.tag.Batch)
	}
	return ids
}

// noFlights fails the test when a batch is still registered as in flight.
func (e *env) noFlights() {
	e.t.Helper()
	e.svc.flights.mu.Lock()
	defer e.svc.flights.mu.Unlock()
	if n := len(e.svc.flights.byBatch); n != 0 {
		e.t.Fatalf("%d batches still registered in flight: %v", n, e.svc.flights.byBatch)
	}
}

func batchReq(id, after string, changes ...syncproto.PushChange) syncproto.PushRequest {
	return syncproto.PushRequest{Edge: "till-1", BatchID: id, After: after, Changes: changes}
}

// TestPush_AfterWaitsForThePreviousWrite: a batch sent with After while the batch it
// follows is running is neither decided nor written until that batch's write returned.
func TestPush_AfterWaitsForThePreviousWrite(t *testing.T) {
	tr := &trace{}
	var n1Deciding, releaseDecide chan struct{}
	releaseApply := make(chan struct{})
	e := newEnv(t, func(c *Config, d *Deps) {
		c.OrderWait = time.Minute
		n1Deciding, releaseDecide = holdDecide(d, "n1")
		gs := d.Store.(*gatedStore)
		hold := gs.schema
		gs.schema = func(batch string) {
			tr.add("decide " + batch)
			hold(batch)
		}
	})
	n1Applying := make(chan struct{})
	e.db.before = func(tag cdc.Tag) error {
		tr.add("apply " + tag.Batch)
		if tag.Batch == "n1" {
			close(n1Applying)
			<-releaseApply
		}
		return nil
	}
	e.db.after = func(tag cdc.Tag) { tr.add("applied " + tag.Batch) }
	n2Waiting := make(chan struct{})
	e.svc.orderWaitHook = func(batch, after string) {
		if batch == "n2" && after == "n1" {
			close(n2Waiting)
		}
	}

	// n1 is in flight but has not decided anything when n2 arrives.
	r1 := e.pushAsync(batchReq("n1", "", insertChange(1, order(1, "a", "1.00", 1))))
	<-n1Deciding
	r2 := e.pushAsync(batchReq("n2", "n1",
		updateChange(2, 0, nil, order(1, "a again", "1.00", 2)),
		insertChange(3, order(2, "b", "2.00", 1))))
	select {
	case <-n2Waiting:
	case r := <-r2:
		t.Fatalf("n2 was answered while n1 had not been decided: %+v %v (steps %v)", r.resp, r.err, tr.all())
	}
	// n1 now writes; n2 still waits while n1 is inside Apply.
	close(releaseDecide)
	<-n1Applying
	if steps := tr.all(); slices.Contains(steps, "decide n2") {
		t.Fatalf("n2 was decided while n1 was being written: %v", steps)
	}
	close(releaseApply)
	for _, r := range []pushResult{<-r1, <-r2} {
		if r.err != nil {
			t.Fatalf("push: %v", r.err)
		}
		for _, res := range r.resp.Results {
			if res.Status != syncproto.PushApplied {
				t.Fatalf("batch %s: %+v", r.resp.BatchID, res)
			}
		}
	}
	steps := tr.all()
	if !slices.Equal(steps, []string{"decide n1", "apply n1", "applied n1", "decide n2", "apply n2", "applied n2"}) {
		t.Fatalf("steps %v: n2 must be decided and written after n1's write returned", steps)
	}
	if got, _ := e.db.row(1); !sameRow(rowRaw(got), order(1, "a again", "1.00", 2)) {
		t.Fatalf("central row 1: %s, want n2's update on top of n1's insert", rowRaw(got))
	}
	e.noFlights()
}

// TestPush_AfterNeverArrives: a batch whose predecessor does not reach the hub within
// OrderWait is answered pending with nothing written; sending both in order works.
func TestPush_AfterNeverArrives(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.OrderWait = 100 * time.Millisecond })
	n1 := batchReq("n1", "", insertChange(1, order(1, "a", "1.00", 1)))
	n2 := batchReq("n2", "n1", updateChange(2, 0, nil, order(1, "a again", "1.00", 2)))
	_, err := e.svc.Push(context.Background(), n2)
	if KindOf(err) != KindPending {
		t.Fatalf("n2 before n1: %v, want KindPending", err)
	}
	var pe *Error
	errors.As(err, &pe)
	mustContain(t, "pending message", pe.Message, "n1", "has not reached the hub", "re-send n1 first", "push.order_wait")
	if ids := e.appliedBatches(); len(ids) != 0 {
		t.Fatalf("written before its predecessor arrived: %v", ids)
	}
	if _, found, err := e.svc.loadBatch(context.Background(), "n2"); err != nil || found {
		t.Fatalf("n2 recorded although it was not run: %v %v", found, err)
	}
	e.push(n1)
	if r := e.push(n2).Results[0]; r.Status != syncproto.PushApplied {
		t.Fatalf("n2 re-sent after n1: %+v", r)
	}
	if ids := e.appliedBatches(); !slices.Equal(ids, []string{"n1", "n2"}) {
		t.Fatalf("write order %v, want [n1 n2]", ids)
	}
	e.noFlights()
}

// TestPush_AfterArrivesLate: a batch whose predecessor arrives while it waits runs
// after the predecessor's write.
func TestPush_AfterArrivesLate(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.OrderWait = time.Minute })
	waiting := make(chan struct{})
	var once sync.Once
	e.svc.orderWaitHook = func(batch, after string) {
		if batch == "n2" {
			once.Do(func() { close(waiting) })
		}
	}
	r2 := e.pushAsync(batchReq("n2", "n1", updateChange(2, 0, nil, order(1, "a again", "1.00", 2))))
	select {
	case <-waiting:
	case r := <-r2:
		t.Fatalf("n2 answered before n1 arrived: %+v %v", r.resp, r.err)
	}
	e.push(batchReq("n1", "", insertChange(1, order(1, "a", "1.00", 1))))
	r := <-r2
	if r.err != nil || r.resp.Results[0].Status != syncproto.PushApplied {
		t.Fatalf("n2 after n1 arrived: %+v %v", r.resp, r.err)
	}
	if ids := e.appliedBatches(); !slices.Equal(ids, []string{"n1", "n2"}) {
		t.Fatalf("write order %v, want [n1 n2]", ids)
	}
	e.noFlights()
}

// TestPush_AfterAFailedBatch: when the batch a waiting batch follows fails as a whole,
// the waiting batch is answered pending and writes nothing.
func TestPush_AfterAFailedBatch(t *testing.T) {
	var n1Deciding, release chan struct{}
	e := newEnv(t, func(c *Config, d *Deps) {
		c.OrderWait = time.Minute
		n1Deciding, release = holdDecide(d, "n1")
	})
	e.db.before = func(tag cdc.Tag) error {
		if tag.Batch == "n1" {
			return errors.New("could not serialize access due to concurrent update")
		}
		return nil
	}
	waiting := make(chan struct{})
	e.svc.orderWaitHook = func(batch, after string) {
		if batch == "n2" {
			close(waiting)
		}
	}
	r1 := e.pushAsync(batchReq("n1", "", insertChange(1, order(1, "a", "1.00", 1))))
	<-n1Deciding
	r2 := e.pushAsync(batchReq("n2", "n1", insertChange(2, order(2, "b", "1.00", 1))))
	select {
	case <-waiting:
	case r := <-r2:
		t.Fatalf("n2 answered while n1 was running: %+v %v", r.resp, r.err)
	}
	close(release)
	if r := <-r1; KindOf(r.err) != KindUnavailable {
		t.Fatalf("n1 with a refused transaction: %v", r.err)
	}
	r := <-r2
	if KindOf(r.err) != KindPending {
		t.Fatalf("n2 after a failed n1: %+v %v, want KindPending", r.resp, r.err)
	}
	var pe *Error
	errors.As(r.err, &pe)
	mustContain(t, "pending message", pe.Message, "n1", "failed", "re-send n1 first", "unchanged")
	if ids := e.appliedBatches(); !slices.Equal(ids, []string{"n1"}) {
		t.Fatalf("writes %v, want only n1's failed attempt", ids)
	}
	if _, ok := e.db.row(2); ok {
		t.Fatal("n2's row was written after n1 failed")
	}
	e.noFlights()
}

// TestPush_AfterAnotherEdgesBatch: After must name the edge's own batch, whether that
// batch is done or running.
func TestPush_AfterAnotherEdgesBatch(t *testing.T) {
	var deciding, release chan struct{}
	e := newEnv(t, func(_ *Config, d *Deps) { deciding, release = holdDecide(d, "theirs-2") })
	other := batchReq("theirs", "", insertChange(1, order(1, "a", "1.00", 1)))
	other.Edge = "till-2"
	e.push(other)
	_, err := e.svc.Push(context.Background(), batchReq("mine", "theirs", insertChange(1, order(2, "b", "1.00", 1))))
	if KindOf(err) != KindInvalid {
		t.Fatalf("after naming another edge's done batch: %v, want KindInvalid", err)
	}
	var pe *Error
	errors.As(err, &pe)
	mustContain(t, "message", pe.Message, "theirs", "till-2", "own previous batch")

	// Running: till-2's batch is in flight.
	other2 := batchReq("theirs-2", "", insertChange(1, order(3, "c", "1.00", 1)))
	other2.Edge = "till-2"
	r := e.pushAsync(other2)
	<-deciding
	_, err = e.svc.Push(context.Background(), batchReq("mine", "theirs-2", insertChange(1, order(2, "b", "1.00", 1))))
	close(release)
	if KindOf(err) != KindInvalid {
		t.Fatalf("after naming another edge's running batch: %v, want KindInvalid", err)
	}
	if res := <-r; res.err != nil {
		t.Fatal(res.err)
	}
	if _, ok := e.db.row(2); ok {
		t.Fatal("a batch with an invalid after was written")
	}
	if _, err := e.svc.Push(context.Background(), batchReq("self", "self")); KindOf(err) != KindInvalid {
		t.Fatalf("after naming the batch itself: %v", err)
	}
	e.noFlights()
}

// TestPush_AfterDoneOrInterrupted: a batch following a done batch proceeds; one
// following a batch left "applying" by a hub stop is pending until that batch has been
// re-sent and its outcome settled.
func TestPush_AfterDoneOrInterrupted(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) {
		c.WaitTimeout = 500 * time.Millisecond
		c.OrderWait = time.Minute
	})
	e.push(batchReq("n0", "", insertChange(1, order(1, "a", "1.00", 1))))
	if r := e.push(batchReq("n1", "n0", insertChange(2, order(2, "b", "1.00", 1)))).Results[0]; r.Status != syncproto.PushApplied || r.Version == 0 {
		t.Fatalf("after a done batch: %+v", r)
	}

	n2 := batchReq("n2", "n1", insertChange(3, order(3, "c", "1.00", 1)))
	e.interruptedPush(n2, true, false)
	n3 := batchReq("n3", "n2", insertChange(4, order(4, "d", "1.00", 1)))
	_, err := e.svc.Push(context.Background(), n3)
	if KindOf(err) != KindPending {
		t.Fatalf("after an interrupted batch: %v, want KindPending", err)
	}
	var pe *Error
	errors.As(err, &pe)
	mustContain(t, "pending message", pe.Message, "n2", "outcome is not known", "re-send n2 first")
	if _, ok := e.db.row(4); ok {
		t.Fatal("written after an interrupted batch")
	}
	if r := e.push(n2).Results[0]; r.Status != syncproto.PushApplied {
		t.Fatalf("recovered n2: %+v", r)
	}
	if r := e.push(n3).Results[0]; r.Status != syncproto.PushApplied {
		t.Fatalf("n3 after n2 was recovered: %+v", r)
	}
	if ids := e.appliedBatches(); !slices.Equal(ids, []string{"n0", "n1", "n2", "n3"}) {
		t.Fatalf("write order %v", ids)
	}
	e.noFlights()
}

// TestPush_PanicLandsTheFlightFailed: a push that panics leaves no batch in flight,
// and the batch that follows it is not written.
func TestPush_PanicLandsTheFlightFailed(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.OrderWait = 100 * time.Millisecond })
	e.db.before = func(tag cdc.Tag) error {
		if tag.Batch == "n1" {
			panic("driver bug")
		}
		return nil
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the applier's panic did not reach the caller")
			}
		}()
		e.svc.Push(context.Background(), batchReq("n1", "", insertChange(1, order(1, "a", "1.00", 1))))
	}()
	e.noFlights()
	if _, err := e.svc.Push(context.Background(), batchReq("n2", "n1", insertChange(2, order(2, "b", "1.00", 1)))); KindOf(err) != KindPending {
		t.Fatalf("after a batch that panicked while writing: %v, want KindPending", err)
	}
	if _, ok := e.db.row(2); ok {
		t.Fatal("written after a batch whose outcome is unknown")
	}
	e.noFlights()
}

func TestConfig_OrderWait(t *testing.T) {
	c := DefaultConfig()
	if c.OrderWait != 5*time.Second {
		t.Fatalf("default order wait %v, want 5s", c.OrderWait)
	}
	c.OrderWait = 0
	err := c.Validate(nil)
	if err == nil {
		t.Fatal("order wait 0 accepted")
	}
	mustContain(t, "error", err.Error(), "push.order_wait", "positive")
}

// TestPush_WaitBehindPredecessorIsNotSkew: a batch that waits 4 s on the hub for the
// batch it follows keeps its write time for last-writer-wins. The edge wrote the row
// at 12:00:01.5 and the central database at 12:00:02, so the server's row wins; taking
// the wait for clock skew would date the edge's write 12:00:05.5 and let it win.
func TestPush_WaitBehindPredecessorIsNotSkew(t *testing.T) {
	var mu sync.Mutex
	clock := time.Date(2026, 1, 10, 12, 0, 3, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	e := newEnv(t, func(c *Config, d *Deps) {
		c.OrderWait = time.Minute
		c.Policies = map[string]conflict.TablePolicy{ordersTable.Name: {Policy: conflict.LWW}}
		d.Now = now
	})
	v1 := e.serverRow(7, order(7, "base", "9.90", 1), false)
	e.serverRow(7, order(7, "server", "9.90", 1), true)
	change := updateChange(1, v1, order(7, "base", "9.90", 1), order(7, "client", "9.90", 1))
	change.HLC = hlcAt(time.Date(2026, 1, 10, 12, 0, 1, 500_000_000, time.UTC), "till-1")

	n1Applying, releaseN1 := e.holdApply("n1")
	n2Waiting := e.waitingFor("n2")
	r1 := e.pushAsync(batchReq("n1", "", insertChange(1, order(1, "a", "1.00", 1))))
	<-n1Applying
	req := batchReq("n2", "n1", change)
	req.SentAt = now().UnixMicro() // the edge's clock agrees with the hub's
	r2 := e.pushAsync(req)
	<-n2Waiting
	mu.Lock()
	clock = clock.Add(4 * time.Second)
	mu.Unlock()
	close(releaseN1)
	if r := <-r1; r.err != nil {
		t.Fatal(r.err)
	}
	r := <-r2
	if r.err != nil {
		t.Fatal(r.err)
	}
	if got := r.resp.Results[0]; got.Status != syncproto.PushConflict || got.Outcome != syncproto.OutcomeServerWon {
		t.Fatalf("result %+v: want a conflict the server's later write won", got)
	}
}

// TestPush_AfterRefusedBatchProceeds: a batch refused as a whole is never written, so
// the batch that follows it is decided at once rather than after push.order_wait.
func TestPush_AfterRefusedBatchProceeds(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.OrderWait, c.MaxBatchChanges = 2*time.Second, 1 })
	_, err := e.svc.Push(context.Background(), batchReq("n1", "",
		insertChange(1, order(1, "a", "1.00", 1)), insertChange(2, order(2, "b", "1.00", 1))))
	if KindOf(err) != KindTooLarge {
		t.Fatalf("n1: %v, want KindTooLarge", err)
	}
	r := e.pushAsync(batchReq("n2", "n1", insertChange(3, order(3, "c", "1.00", 1))))
	select {
	case res := <-r:
		if res.err != nil || res.resp.Results[0].Status != syncproto.PushApplied {
			t.Fatalf("n2 after a refused n1: %+v %v, want applied", res.resp, res.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("n2 still waits for n1, which was refused and will never be written")
	}
}

// TestPush_OrderWaitBoundsOnlyArrival: once the batch it follows has arrived, a batch
// waits for that batch's write however long it takes, beyond push.order_wait.
func TestPush_OrderWaitBoundsOnlyArrival(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.OrderWait = 50 * time.Millisecond })
	n1Applying, releaseN1 := e.holdApply("n1")
	n2Waiting := e.waitingFor("n2")
	r1 := e.pushAsync(batchReq("n1", "", insertChange(1, order(1, "a", "1.00", 1))))
	<-n1Applying
	r2 := e.pushAsync(batchReq("n2", "n1", insertChange(2, order(2, "b", "1.00", 1))))
	<-n2Waiting
	time.Sleep(4 * e.cfg.OrderWait) // n1's write outlasts push.order_wait
	close(releaseN1)
	for _, r := range []pushResult{<-r1, <-r2} {
		if r.err != nil {
			t.Fatalf("push: %v", r.err)
		}
	}
}

// TestPush_RecoveryDoesNotTakeAnEarlierWriteForItsOwn: n1 inserts row 1 and is
// captured only late; n2 (After n1) updates row 1 and is interrupted before its
// transaction committed; n1's write then reaches the change log above n2's recorded
// head. n2's re-send must not be answered "applied" on the strength of n1's version
// of the row: its outcome is not known yet.
func TestPush_RecoveryDoesNotTakeAnEarlierWriteForItsOwn(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.WaitTimeout = 50 * time.Millisecond })
	e.db.capture = false
	e.push(batchReq("n1", "", insertChange(1, order(1, "a", "1.00", 1)))) // answered without a version
	n2 := batchReq("n2", "n1", updateChange(2, 0, nil, order(1, "a again", "1.00", 2)))
	e.db.capture = true
	e.interruptedPush(n2, false, false)
	e.db.mu.Lock()
	e.db.appendLocked("till-1", "n1", []cdc.Change{{Table: ordersTable.Name, Op: cdc.OpInsert, After: order(1, "a", "1.00", 1)}})
	e.db.mu.Unlock()
	resp, err := e.svc.Push(context.Background(), n2)
	if err == nil {
		t.Fatalf("n2 was answered %+v although its update was never written (row %s)", resp.Results, rowRaw(must(e.db.row(1))))
	}
	if KindOf(err) != KindPending {
		t.Fatalf("n2's re-send: %v, want KindPending", err)
	}
}

func must(r cdc.Row, _ bool) cdc.Row { return r }

// holdApply stops batch's central-database write until release is closed; applying is
// closed when the write has started.
func (e *env) holdApply(batch string) (applying, release chan struct{}) {
	applying, release = make(chan struct{}), make(chan struct{})
	e.db.before = func(tag cdc.Tag) error {
		if tag.Batch == batch {
			close(applying)
			<-release
		}
		return nil
	}
	return applying, release
}

// waitingFor returns a channel closed when batch starts waiting for the batch it
// follows.
func (e *env) waitingFor(batch string) <-chan struct{} {
	waiting := make(chan struct{})
	var once sync.Once
	e.svc.orderWaitHook = func(b, _ string) {
		if b == batch {
			once.Do(func() { close(waiting) })
		}
	}
	return waiting
}
