package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSQLite_AppendQueryRoundTrip(t *testing.T) {
	s, _ := openTest(t)
	zone := time.FixedZone("CET", 3600)
	in := []Event{
		{
			ID:      999, // ignored: the log assigns IDs
			Time:    time.Date(2026, 3, 1, 13, 0, 0, 123456789, zone),
			Actor:   EdgeActor("till-7"),
			Action:  ActionConflict,
			Edge:    "till-7",
			Table:   "public.orders",
			Key:     `{"id":42}`,
			Outcome: "server-wins",
			Detail:  "base version 10, latest 12",
			Before:  json.RawMessage(`{"id":42,"qty":1}`),
			After:   json.RawMessage(`{"id":42,"qty":2,"note":"a, \"b\"\nc"}`),
		},
		{Time: base, Actor: ActorSystem, Action: ActionAdmin},
	}
	mustAppend(t, s, in...)
	got := mustQuery(t, s, Filter{})
	if len(got) != 2 {
		t.Fatalf("got %d events, want 2", len(got))
	}
	// Newest (highest ID) first.
	if got[0].ID != 2 || got[1].ID != 1 {
		t.Fatalf("ids = %v, want [2 1]", ids(got))
	}
	want := in[0]
	want.ID = 1
	want.Time = time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC) // microseconds, UTC
	if !reflect.DeepEqual(got[1], want) {
		t.Errorf("event 1:\n got %+v\nwant %+v", got[1], want)
	}
	if got[0].Before != nil || got[0].After != nil {
		t.Errorf("event 2 row images = %q, %q; want nil", got[0].Before, got[0].After)
	}
	if got[0].Time.Location() != time.UTC {
		t.Errorf("event time location = %v, want UTC", got[0].Time.Location())
	}
	// Events encode to JSON without the empty optional fields.
	b, err := json.Marshal(got[0])
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":2,"time":"2026-03-01T12:00:00Z","actor":"system","action":"admin"}`; string(b) != want {
		t.Errorf("json = %s, want %s", b, want)
	}
}

func TestSQLite_AppendZeroTimeIsNow(t *testing.T) {
	s, _ := openTest(t)
	before := time.Now().Add(-time.Second)
	mustAppend(t, s, Event{Actor: ActorSystem, Action: ActionAdmin})
	after := time.Now().Add(time.Second)
	got := mustQuery(t, s, Filter{})
	if len(got) != 1 {
		t.Fatalf("got %d events, want 1", len(got))
	}
	if got[0].Time.Before(before) || got[0].Time.After(after) {
		t.Errorf("time = %v, want between %v and %v", got[0].Time, before, after)
	}
}

func TestSQLite_AppendInvalidStoresNothing(t *testing.T) {
	good := Event{Time: base, Actor: ActorSystem, Action: ActionAdmin}
	cases := []struct {
		name string
		e    Event
		want string
	}{
		{"no actor", Event{Action: ActionPush}, "actor is empty"},
		{"bad actor", Event{Actor: "bob", Action: ActionPush}, `actor "bob"`},
		{"bare edge prefix", Event{Actor: "edge:", Action: ActionPush}, `actor "edge:"`},
		{"no action", Event{Actor: ActorSystem}, `action ""`},
		{"bad action", Event{Actor: ActorSystem, Action: "Push!"}, `action "Push!"`},
		{"bad before", Event{Actor: ActorSystem, Action: ActionPush, Before: json.RawMessage(`{x`)}, "before row image"},
		{"bad after", Event{Actor: ActorSystem, Action: ActionPush, After: json.RawMessage(`[1,`)}, "after row image"},
		{"long key", Event{Actor: ActorSystem, Action: ActionPush, Key: strings.Repeat("k", maxNameLen+1)}, "key is"},
		{"long detail", Event{Actor: ActorSystem, Action: ActionPush, Detail: strings.Repeat("d", maxDetailLen+1)}, "detail is"},
		{"time out of range", Event{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Actor: ActorSystem, Action: ActionPush}, "years 1 and 9999"},
	}
	s, _ := openTest(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := s.Append(context.Background(), good, c.e)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "event 2 of 2") {
				t.Fatalf("Append error = %v, want one naming event 2 of 2 and containing %q", err, c.want)
			}
		})
	}
	if got := mustQuery(t, s, Filter{}); len(got) != 0 {
		t.Errorf("%d events stored after failed appends, want 0", len(got))
	}
}

func TestSQLite_AppendNothing(t *testing.T) {
	s, _ := openTest(t)
	if err := s.Append(context.Background()); err != nil {
		t.Fatalf("Append(): %v", err)
	}
}

func TestSQLite_AppendCancelled(t *testing.T) {
	s, _ := openTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Append(ctx, Event{Actor: ActorSystem, Action: ActionAdmin}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with cancelled context: %v, want context.Canceled", err)
	}
	if got := mustQuery(t, s, Filter{}); len(got) != 0 {
		t.Errorf("%d events stored by a cancelled append, want 0", len(got))
	}
}

// filterFixture appends 12 events and returns them with their IDs (1..12): edges a and
// b, tables t1 and t2, keys k1 and k2, actors edge/admin/system, one minute apart.
func filterFixture(t *testing.T, s *SQLite) []Event {
	t.Helper()
	actions := []string{ActionPush, ActionConflict, ActionResolve, ActionReject}
	var events []Event
	for i := range 12 {
		e := Event{
			Time:   base.Add(time.Duration(i) * time.Minute),
			Action: actions[i%4],
			Table:  []string{"t1", "t2"}[i%2],
			Key:    []string{"k1", "k2"}[(i/2)%2],
		}
		switch i % 3 {
		case 0:
			e.Actor, e.Edge = EdgeActor("a"), "a"
		case 1:
			e.Actor, e.Edge = EdgeActor("b"), "b"
		default:
			e.Actor, e.Edge = AdminActor("root"), "a"
		}
		events = append(events, e)
	}
	mustAppend(t, s, events...)
	for i := range events {
		events[i].ID = int64(i + 1)
	}
	return events
}

func TestSQLite_QueryFilters(t *testing.T) {
	s, _ := openTest(t)
	events := filterFixture(t, s)
	// expect computes the matching IDs, newest first, by brute force over the fixture.
	expect := func(f Filter, match func(Event) bool) []int64 {
		var out []int64
		for _, e := range slices.Backward(events) {
			if match(e) {
				out = append(out, e.ID)
			}
		}
		return out
	}
	cases := []struct {
		name  string
		f     Filter
		match func(Event) bool
	}{
		{"all", Filter{}, func(Event) bool { return true }},
		{"actor", Filter{Actor: EdgeActor("b")}, func(e Event) bool { return e.Actor == "edge:b" }},
		{"admin actor", Filter{Actor: AdminActor("root")}, func(e Event) bool { return e.Actor == "admin:root" }},
		{"edge", Filter{Edge: "a"}, func(e Event) bool { return e.Edge == "a" }},
		{"table", Filter{Table: "t2"}, func(e Event) bool { return e.Table == "t2" }},
		{"key", Filter{Key: "k1"}, func(e Event) bool { return e.Key == "k1" }},
		{"table and key", Filter{Table: "t1", Key: "k2"}, func(e Event) bool { return e.Table == "t1" && e.Key == "k2" }},
		{"action", Filter{Action: ActionConflict}, func(e Event) bool { return e.Action == "conflict" }},
		{"edge and action", Filter{Edge: "a", Action: ActionPush}, func(e Event) bool { return e.Edge == "a" && e.Action == "push" }},
		{"actor and table", Filter{Actor: AdminActor("root"), Table: "t1"}, func(e Event) bool { return e.Actor == "admin:root" && e.Table == "t1" }},
		{"from", Filter{From: base.Add(5 * time.Minute)}, func(e Event) bool { return !e.Time.Before(base.Add(5 * time.Minute)) }},
		{"to", Filter{To: base.Add(5 * time.Minute)}, func(e Event) bool { return e.Time.Before(base.Add(5 * time.Minute)) }},
		{"from to edge", Filter{From: base.Add(2 * time.Minute), To: base.Add(9 * time.Minute), Edge: "b"}, func(e Event) bool {
			return e.Edge == "b" && !e.Time.Before(base.Add(2*time.Minute)) && e.Time.Before(base.Add(9*time.Minute))
		}},
		{"everything", Filter{From: base, To: base.Add(time.Hour), Actor: EdgeActor("a"), Edge: "a", Table: "t1", Key: "k1", Action: ActionPush},
			func(e Event) bool {
				return e.Actor == "edge:a" && e.Edge == "a" && e.Table == "t1" && e.Key == "k1" && e.Action == "push"
			}},
		{"no match", Filter{Edge: "nobody"}, func(Event) bool { return false }},
		{"zone-independent time", Filter{From: base.Add(10 * time.Minute).In(time.FixedZone("X", -5*3600))}, func(e Event) bool { return e.ID >= 11 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := mustQuery(t, s, c.f)
			want := expect(c.f, c.match)
			if !slices.Equal(ids(got), want) {
				t.Errorf("ids = %v, want %v", ids(got), want)
			}
			for _, e := range got {
				if !reflect.DeepEqual(e, normalize(events[e.ID-1])) {
					t.Errorf("event %d = %+v, want %+v", e.ID, e, events[e.ID-1])
				}
			}
		})
	}
	// The fixture must be rich enough that each filter both keeps and drops something.
	for _, c := range cases[1:14] {
		if n := len(expect(c.f, c.match)); n == 0 || n == len(events) {
			t.Errorf("fixture too uniform for %q: %d of %d match", c.name, n, len(events))
		}
	}
}

// normalize returns e as Query returns it.
func normalize(e Event) Event {
	e.Time = time.UnixMicro(e.Time.UnixMicro()).UTC()
	return e
}

func TestSQLite_QueryPagingNewestFirst(t *testing.T) {
	s, _ := openTest(t)
	var events []Event
	for i := range 25 {
		events = append(events, Event{Time: base.Add(time.Duration(i) * time.Second), Actor: ActorSystem, Action: ActionAdmin, Edge: []string{"x", "y"}[i%2]})
	}
	mustAppend(t, s, events...)

	var all []int64
	f := Filter{Limit: 10}
	for range 10 { // bounded: 3 pages expected
		page := mustQuery(t, s, f)
		all = append(all, ids(page)...)
		if len(page) < f.Limit {
			break
		}
		f.BeforeID = page[len(page)-1].ID
	}
	want := make([]int64, 0, 25)
	for id := int64(25); id >= 1; id-- {
		want = append(want, id)
	}
	if !slices.Equal(all, want) {
		t.Errorf("paged ids = %v, want %v", all, want)
	}

	// Paging combined with a filter.
	var edgeY []int64
	f = Filter{Edge: "y", Limit: 4}
	for range 10 {
		page := mustQuery(t, s, f)
		edgeY = append(edgeY, ids(page)...)
		if len(page) < f.Limit {
			break
		}
		f.BeforeID = page[len(page)-1].ID
	}
	if want := []int64{24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2}; !slices.Equal(edgeY, want) {
		t.Errorf("paged edge y ids = %v, want %v", edgeY, want)
	}
}

func TestSQLite_QueryPagingAfterID(t *testing.T) {
	s, _ := openTest(t)
	for i := range 7 {
		mustAppend(t, s, Event{Time: base.Add(time.Duration(i) * time.Second), Actor: ActorSystem, Action: ActionAdmin})
	}
	var all []int64
	f := Filter{Limit: 3}
	first := mustQuery(t, s, Filter{Limit: 3, AfterID: 1})
	if want := []int64{2, 3, 4}; !slices.Equal(ids(first), want) {
		t.Fatalf("AfterID 1 ids = %v, want %v (oldest first)", ids(first), want)
	}
	f.AfterID = 1
	for range 10 {
		page := mustQuery(t, s, f)
		all = append(all, ids(page)...)
		if len(page) < f.Limit {
			break
		}
		f.AfterID = page[len(page)-1].ID
	}
	if want := []int64{2, 3, 4, 5, 6, 7}; !slices.Equal(all, want) {
		t.Errorf("paged ids = %v, want %v", all, want)
	}
	between := mustQuery(t, s, Filter{AfterID: 2, BeforeID: 6})
	if want := []int64{3, 4, 5}; !slices.Equal(ids(between), want) {
		t.Errorf("ids between 2 and 6 = %v, want %v", ids(between), want)
	}
}

func TestSQLite_QueryLimits(t *testing.T) {
	s, _ := openTest(t)
	events := make([]Event, MaxLimit+5)
	for i := range events {
		events[i] = Event{Time: base, Actor: ActorSystem, Action: ActionAdmin}
	}
	mustAppend(t, s, events...)
	if got := mustQuery(t, s, Filter{}); len(got) != DefaultLimit {
		t.Errorf("default limit: got %d events, want %d", len(got), DefaultLimit)
	}
	if got := mustQuery(t, s, Filter{Limit: 7}); len(got) != 7 || got[0].ID != int64(len(events)) {
		t.Errorf("limit 7: got %d events starting at %d, want 7 starting at %d", len(got), got[0].ID, len(events))
	}
	if got := mustQuery(t, s, Filter{Limit: MaxLimit}); len(got) != MaxLimit {
		t.Errorf("max limit: got %d events, want %d", len(got), MaxLimit)
	}
	if _, err := s.Query(context.Background(), Filter{Limit: MaxLimit + 1}); err == nil || !strings.Contains(err.Error(), "limit 1001") {
		t.Errorf("limit over max: error %v, want one naming limit 1001", err)
	}
}

func TestFilter_Validate(t *testing.T) {
	cases := []struct {
		name string
		f    Filter
		want string // "" means valid
	}{
		{"zero", Filter{}, ""},
		{"full", Filter{From: base, To: base.Add(time.Hour), Actor: "system", Edge: "e", Table: "t", Key: "k", Action: "push", AfterID: 3, BeforeID: 9, Limit: MaxLimit}, ""},
		{"negative limit", Filter{Limit: -1}, "limit -1"},
		{"limit too big", Filter{Limit: MaxLimit + 1}, "limit 1001"},
		{"negative after", Filter{AfterID: -1}, "after_id -1"},
		{"negative before", Filter{BeforeID: -2}, "before_id -2"},
		{"before not after after", Filter{AfterID: 5, BeforeID: 5}, "must be greater than after_id 5"},
		{"from equals to", Filter{From: base, To: base}, "from must be before to"},
		{"from after to", Filter{From: base.Add(time.Second), To: base}, "from must be before to"},
		{"from out of range", Filter{From: time.Date(-5, 1, 1, 0, 0, 0, 0, time.UTC)}, "years 1 and 9999"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.f.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Errorf("Validate: %v, want nil", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("Validate: %v, want error containing %q", err, c.want)
			}
		})
	}
}

func TestSQLite_TriggersRefuseUpdateAndDelete(t *testing.T) {
	s, path := openTest(t)
	mustAppend(t, s,
		Event{Time: base, Actor: ActorSystem, Action: ActionAdmin, Detail: "original"},
		Event{Time: base.Add(time.Hour), Actor: ActorSystem, Action: ActionAdmin})
	db := openRaw(t, path)
	for _, q := range []string{
		`UPDATE audit_events SET detail = 'forged' WHERE id = 1`,
		`UPDATE audit_events SET time_us = 0`,
		`DELETE FROM audit_events WHERE id = 1`,
		`DELETE FROM audit_events`,
		`INSERT OR REPLACE INTO audit_events (id, time_us, actor, action, edge, tbl, key, outcome, detail)
			VALUES (1, 0, 'system', 'admin', '', '', '', '', 'replaced')`,
	} {
		_, err := db.Exec(q)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: error %v, want the append-only refusal", q, err)
		}
	}
	if n := count(t, db); n != 2 {
		t.Errorf("%d events left, want 2", n)
	}
	got := mustQuery(t, s, Filter{})
	if len(got) != 2 || got[1].Detail != "original" {
		t.Errorf("events after refused writes = %+v", got)
	}
	// The retention cutoff only lets older events go, even when set by hand.
	if _, err := db.Exec(`UPDATE audit_retention SET prune_before_us = ?`, base.Add(time.Minute).UnixMicro()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM audit_events WHERE id = 2`); err == nil {
		t.Error("deleting an event newer than the retention cutoff succeeded")
	}
}

func TestSQLite_Prune(t *testing.T) {
	s, path := openTest(t)
	// Twice the prune step, plus some, so Prune needs several transactions.
	const old = 2*pruneStep + 17
	events := make([]Event, 0, old+3)
	for i := range old {
		events = append(events, Event{Time: base.Add(time.Duration(i) * time.Microsecond), Actor: ActorSystem, Action: ActionPush})
	}
	cutoff := base.Add(time.Hour)
	events = append(events,
		Event{Time: cutoff, Actor: ActorSystem, Action: ActionAdmin, Detail: "at cutoff"},
		Event{Time: cutoff.Add(time.Microsecond), Actor: ActorSystem, Action: ActionAdmin, Detail: "after"},
		Event{Time: cutoff.Add(-time.Microsecond), Actor: ActorSystem, Action: ActionAdmin, Detail: "just before"},
	)
	mustAppend(t, s, events...)
	n, err := s.Prune(context.Background(), cutoff)
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	if n != old+1 {
		t.Errorf("Prune deleted %d, want %d", n, old+1)
	}
	got := mustQuery(t, s, Filter{})
	var details []string
	for _, e := range got {
		details = append(details, e.Detail)
	}
	if want := []string{"after", "at cutoff"}; !slices.Equal(details, want) {
		t.Errorf("left after prune: %q, want %q", details, want)
	}
	// The trigger is closed again afterwards.
	db := openRaw(t, path)
	if _, err := db.Exec(`DELETE FROM audit_events`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("delete after Prune: %v, want the append-only refusal", err)
	}
	var flag *int64
	if err := db.QueryRow(`SELECT prune_before_us FROM audit_retention`).Scan(&flag); err != nil || flag != nil {
		t.Errorf("retention cutoff after Prune = %v (%v), want NULL", flag, err)
	}
	// Pruning everything does not let IDs be reused.
	if _, err := s.Prune(context.Background(), cutoff.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, Event{Actor: ActorSystem, Action: ActionAdmin})
	got = mustQuery(t, s, Filter{})
	if len(got) != 1 || got[0].ID != int64(len(events)+1) {
		t.Errorf("after pruning all and appending: %v, want one event with id %d", ids(got), len(events)+1)
	}
	if _, err := s.Prune(context.Background(), time.Time{}); err == nil {
		t.Error("Prune with a zero cutoff succeeded")
	}
}

func TestSQLite_ConcurrentAppend(t *testing.T) {
	s, _ := openTest(t)
	const writers, perWriter, batch = 6, 40, 3
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				evs := make([]Event, batch)
				for j := range evs {
					evs[j] = Event{Actor: EdgeActor(fmt.Sprint(w)), Action: ActionPush, Edge: fmt.Sprint(w), Key: fmt.Sprintf("%d/%d", i, j)}
				}
				if err := s.Append(context.Background(), evs...); err != nil {
					errs <- err
					return
				}
				// Readers run alongside the writers.
				if _, err := s.Query(context.Background(), Filter{Edge: fmt.Sprint(w), Limit: 5}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var maxID int64
	f := Filter{Limit: MaxLimit}
	for range 10 {
		page := mustQuery(t, s, f)
		for _, e := range page {
			k := e.Edge + "#" + e.Key
			if seen[k] {
				t.Errorf("event %s stored twice", k)
			}
			seen[k] = true
			maxID = max(maxID, e.ID)
		}
		if len(page) < f.Limit {
			break
		}
		f.BeforeID = page[len(page)-1].ID
	}
	if want := writers * perWriter * batch; len(seen) != want || maxID != int64(want) {
		t.Errorf("%d distinct events, max id %d; want %d of each", len(seen), maxID, want)
	}
	// Each batch is contiguous: one transaction per Append.
	for w := range writers {
		evs := mustQuery(t, s, Filter{Edge: fmt.Sprint(w), Limit: MaxLimit})
		for i := 0; i+batch <= len(evs); i += batch {
			if evs[i].ID-evs[i+batch-1].ID != batch-1 {
				t.Errorf("writer %d batch at ids %v not contiguous", w, ids(evs[i:i+batch]))
			}
		}
	}
}

func TestOpenSQLite_ReopenAndRefuseForeign(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.db")
	ctx := context.Background()
	s, err := OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, Event{Time: base, Actor: ActorSystem, Action: ActionAdmin})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	mustAppend(t, s, Event{Time: base, Actor: ActorSystem, Action: ActionAdmin})
	if got := mustQuery(t, s, Filter{}); !slices.Equal(ids(got), []int64{2, 1}) {
		t.Errorf("after reopen ids = %v, want [2 1]", ids(got))
	}
	s.Close()
	if err := s.Append(ctx, Event{Actor: ActorSystem, Action: ActionAdmin}); err == nil {
		t.Error("Append after Close succeeded")
	}

	foreign := filepath.Join(dir, "other.db")
	db := openRaw(t, foreign)
	if _, err := db.Exec(`CREATE TABLE x (a)`); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSQLite(ctx, foreign, nil); err == nil || !strings.Contains(err.Error(), "did not create") {
		t.Errorf("open foreign file: %v, want a refusal", err)
	}
	for _, bad := range []string{"", ":memory:", "file:x.db", "x.db?mode=ro"} {
		if _, err := OpenSQLite(ctx, bad, nil); err == nil || !strings.Contains(err.Error(), "audit sqlite path") {
			t.Errorf("OpenSQLite(%q): %v, want a path error", bad, err)
		}
	}
}

func TestActors(t *testing.T) {
	if got := EdgeActor("till-1"); got != "edge:till-1" {
		t.Errorf("EdgeActor = %q", got)
	}
	if got := AdminActor("ann"); got != "admin:ann" {
		t.Errorf("AdminActor = %q", got)
	}
	for _, a := range []string{ActionPush, ActionConflict, ActionResolve, ActionReject, ActionAuthFailure, ActionKeyCreate, ActionKeyRevoke, ActionAdmin} {
		if !validAction(a) {
			t.Errorf("action constant %q is not a valid action", a)
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			s, _ := openTest(b)
			evs := make([]Event, n)
			for i := range evs {
				evs[i] = Event{Actor: EdgeActor("bench"), Action: ActionConflict, Edge: "bench", Table: "public.orders",
					Key: `{"id":42}`, Outcome: "server-wins", Before: json.RawMessage(`{"id":42,"qty":1}`), After: json.RawMessage(`{"id":42,"qty":2}`)}
			}
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				if err := s.Append(ctx, evs...); err != nil {
					b.Fatal(err)
				}
			}
			rate := float64(b.N*n) / time.Since(start).Seconds()
			b.ReportMetric(rate, "events/s")
		})
	}
}
