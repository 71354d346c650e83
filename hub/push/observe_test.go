package push

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/conflict"
	"github.com/synchub/synchub/hub/syncproto"
)

// countingObserver records every call as a string.
type countingObserver struct {
	mu    sync.Mutex
	calls map[string]int
}

func (o *countingObserver) add(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.calls == nil {
		o.calls = map[string]int{}
	}
	o.calls[s]++
}

func (o *countingObserver) PushResult(status string) { o.add("result " + status) }
func (o *countingObserver) Conflict(table, policy, outcome string) {
	o.add(fmt.Sprintf("conflict %s %s %s", table, policy, outcome))
}
func (o *countingObserver) Rejected(code string) { o.add("rejected " + code) }

func (o *countingObserver) snapshot() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[string]int, len(o.calls))
	for k, v := range o.calls {
		out[k] = v
	}
	return out
}

// TestPush_Observer: a batch with an applied change, a manual conflict, a constraint
// refusal and a bad change is counted once, and a re-send of it is not counted again;
// OpenCounts sees the queued conflict and the two rejected changes.
func TestPush_Observer(t *testing.T) {
	obs := &countingObserver{}
	e := newEnv(t, func(c *Config, d *Deps) {
		c.Policies = map[string]conflict.TablePolicy{ordersTable.Name: {Policy: conflict.Manual}}
		d.Observer = obs
	})
	e.db.refuse = func(c cdc.Change) error {
		if v, _ := c.After.Get("id"); v.AsInt() == 3 {
			return errors.New("violates check constraint")
		}
		return nil
	}
	base := order(7, "base", "1.00", 1)
	v1 := e.serverRow(7, base, false)
	e.serverRow(7, order(7, "server", "1.00", 1), true)
	req := syncproto.PushRequest{Edge: "till-1", BatchID: "b1", SentAt: e.now.UnixMicro(), Changes: []syncproto.PushChange{
		insertChange(1, order(1, "a", "1.00", 1)),
		updateChange(2, v1, base, order(7, "client", "1.00", 1)),
		insertChange(3, order(3, "c", "3.00", 3)),
		{ID: 4, Table: "public.nope", Op: "i", Key: keyRaw(4)},
	}}
	e.push(req)
	want := map[string]int{
		"result applied":                       1,
		"result conflict":                      1,
		"result rejected":                      2,
		"conflict public.orders manual manual": 1,
		"rejected " + CodeConstraint:           1,
		"rejected " + CodeBadChange:            1,
	}
	if got := obs.snapshot(); !reflect.DeepEqual(got, want) {
		t.Fatalf("observed %v, want %v", sorted(got), sorted(want))
	}
	e.push(req) // a re-send gets the stored answer and is not counted again
	if got := obs.snapshot(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after re-send observed %v, want %v", sorted(got), sorted(want))
	}
	c, r, err := e.svc.OpenCounts(context.Background())
	if err != nil || c != 1 || r != 2 {
		t.Fatalf("OpenCounts = %d conflicts, %d rejected, %v; want 1, 2", c, r, err)
	}
}

func sorted(m map[string]int) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(out)
	return out
}
