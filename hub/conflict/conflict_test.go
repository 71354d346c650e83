package conflict

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

var orders = &cdc.Table{
	Name: "public.orders",
	Columns: []cdc.Column{
		{Name: "id", Kind: cdc.KindInt},
		{Name: "note", Kind: cdc.KindText},
		{Name: "total", Kind: cdc.KindDecimal},
		{Name: "qty", Kind: cdc.KindInt},
	},
	PrimaryKey: []string{"id"},
}

func order(id int64, note, total string, qty int64) cdc.Row {
	return cdc.Row{
		{Name: "id", Value: cdc.Int(id)},
		{Name: "note", Value: cdc.Text(cdc.KindText, note)},
		{Name: "total", Value: cdc.Text(cdc.KindDecimal, total)},
		{Name: "qty", Value: cdc.Int(qty)},
	}
}

func rowString(r cdc.Row) string {
	if r == nil {
		return "<nil>"
	}
	return string(syncproto.AppendRow(nil, r))
}

var hubNow = time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)

func updateConflict() Conflict {
	return Conflict{
		Kind: UpdateVsUpdate, Edge: "till-1", Table: orders, Op: cdc.OpUpdate,
		Key:    cdc.Row{{Name: "id", Value: cdc.Int(7)}},
		Base:   order(7, "base", "9.90", 1),
		Client: order(7, "client", "9.90", 1),
		Server: order(7, "base", "12.00", 1),
		Latest: Latest{Exists: true, Version: 5, Origin: "", CommitTime: hubNow.Add(-time.Minute)},
	}
}

func TestDetect(t *testing.T) {
	live := Latest{Exists: true, Version: 10, Origin: ""}
	deleted := Latest{Exists: true, Version: 10, Origin: "till-2", Deleted: true}
	for _, tc := range []struct {
		name   string
		op     cdc.Op
		base   int64
		latest Latest
		want   Kind
		ok     bool
	}{
		{"unknown row", cdc.OpUpdate, 3, Latest{}, "", false},
		{"base is latest", cdc.OpUpdate, 10, live, "", false},
		{"update vs newer update", cdc.OpUpdate, 9, live, UpdateVsUpdate, true},
		{"own write", cdc.OpUpdate, 9, Latest{Exists: true, Version: 10, Origin: "till-1"}, "", false},
		{"insert vs insert", cdc.OpInsert, 0, live, InsertVsInsert, true},
		{"insert of deleted row", cdc.OpInsert, 0, deleted, "", false},
		{"update vs delete", cdc.OpUpdate, 4, deleted, UpdateVsDelete, true},
		{"delete vs update", cdc.OpDelete, 4, live, DeleteVsUpdate, true},
		{"delete vs delete", cdc.OpDelete, 4, deleted, "", false},
	} {
		got, ok := Detect(tc.op, tc.base, "till-1", tc.latest)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: %q %v, want %q %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestResolve_FixedPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy Policy
		want   string
	}{
		{ServerWins, syncproto.OutcomeServerWon},
		{ClientWins, syncproto.OutcomeClientWon},
		{Manual, syncproto.OutcomeManual},
	} {
		r := Rules{Tables: map[string]TablePolicy{orders.Name: {Policy: tc.policy}}}
		d, p, err := r.Resolve(context.Background(), updateConflict())
		if err != nil || d.Outcome != tc.want || p.Policy != tc.policy {
			t.Errorf("%s: %+v %v %v, want %s", tc.policy, d, p, err, tc.want)
		}
	}
}

func TestResolve_DefaultIsLWW(t *testing.T) {
	if p := (Rules{}).For("public.other"); p.Policy != LWW || p.Tiebreak != TiebreakServer {
		t.Fatalf("default policy %+v", p)
	}
	r := Rules{Default: TablePolicy{Policy: ServerWins}, Tables: map[string]TablePolicy{"public.x": {Tiebreak: TiebreakClient}}}
	if p := r.For("public.x"); p.Policy != ServerWins || p.Tiebreak != TiebreakClient {
		t.Fatalf("table without policy takes the default policy: %+v", p)
	}
}

func TestResolve_LWW(t *testing.T) {
	c := updateConflict()
	serverAt := c.Latest.CommitTime
	for _, tc := range []struct {
		name   string
		client time.Time
		want   string
	}{
		{"client later", serverAt.Add(time.Second), syncproto.OutcomeClientWon},
		{"client earlier", serverAt.Add(-time.Second), syncproto.OutcomeServerWon},
		{"tie goes to the server", serverAt, syncproto.OutcomeServerWon},
		{"unknown client time", time.Time{}, syncproto.OutcomeServerWon},
	} {
		c.ClientTime = tc.client
		d, _, err := Rules{}.Resolve(context.Background(), c)
		if err != nil || d.Outcome != tc.want {
			t.Errorf("%s: %+v %v, want %s", tc.name, d, err, tc.want)
		}
	}
}

// TestResolve_LWWSkew: an edge whose clock runs 10 minutes ahead writes 30 seconds
// before a server write on the real time line; without skew correction its HLC would
// look 9.5 minutes newer and win.
func TestResolve_LWWSkew(t *testing.T) {
	const ahead = 10 * time.Minute
	edgeWrite := hubNow.Add(-2 * time.Minute) // real time of the edge's write
	serverWrite := edgeWrite.Add(30 * time.Second)
	h := syncproto.HLC{Wall: edgeWrite.Add(ahead).UnixMicro(), Node: "till-1"}
	sentAt := hubNow.Add(ahead).UnixMicro()

	got := ClientTime(h, sentAt, hubNow, hubNow)
	if !got.Equal(edgeWrite) {
		t.Fatalf("corrected time %v, want %v", got, edgeWrite)
	}
	c := updateConflict()
	c.Latest.CommitTime = serverWrite
	c.ClientTime = got
	d, _, err := Rules{}.Resolve(context.Background(), c)
	if err != nil || d.Outcome != syncproto.OutcomeServerWon {
		t.Fatalf("skewed edge: %+v %v, want server_won", d, err)
	}
	// Uncorrected, the same edge would have won: the test distinguishes the two.
	c.ClientTime = time.UnixMicro(h.Wall)
	if d, _, _ := (Rules{}).Resolve(context.Background(), c); d.Outcome != syncproto.OutcomeClientWon {
		t.Fatalf("uncorrected time should win, got %+v", d)
	}
	// Never later than the hub's clock, even with no send time to correct by.
	if got := ClientTime(syncproto.HLC{Wall: hubNow.Add(time.Hour).UnixMicro()}, 0, hubNow, hubNow); !got.Equal(hubNow) {
		t.Fatalf("future write not capped: %v", got)
	}
	// An edge behind by 5 minutes is moved forward.
	behind := syncproto.HLC{Wall: edgeWrite.Add(-5 * time.Minute).UnixMicro()}
	if got := ClientTime(behind, hubNow.Add(-5*time.Minute).UnixMicro(), hubNow, hubNow); !got.Equal(edgeWrite) {
		t.Fatalf("edge behind: %v, want %v", got, edgeWrite)
	}
}

// TestClientTime_WaitOnTheHubIsNotSkew: a batch that waited 4 s on the hub before its
// decision keeps its write time; measuring the skew at the decision would move it 4 s
// later and let it win against a central write made after it.
func TestClientTime_WaitOnTheHubIsNotSkew(t *testing.T) {
	edgeWrite := hubNow.Add(-500 * time.Millisecond)
	h := syncproto.HLC{Wall: edgeWrite.UnixMicro(), Node: "till-1"} // clocks agree
	received := hubNow
	decided := hubNow.Add(4 * time.Second)
	if got := ClientTime(h, received.UnixMicro(), received, decided); !got.Equal(edgeWrite) {
		t.Fatalf("write time %v after a 4 s wait, want %v", got, edgeWrite)
	}
}

func TestMerge_NonOverlapping(t *testing.T) {
	c := updateConflict() // client changed note, server changed total
	for _, tb := range []Tiebreak{TiebreakServer, TiebreakClient, TiebreakManual} {
		d := ThreeWayMerge(c, tb)
		want := order(7, "client", "12.00", 1)
		if d.Outcome != syncproto.OutcomeMerged || rowString(d.Row) != rowString(want) {
			t.Errorf("tiebreak %s: %s %s, want merged %s", tb, d.Outcome, rowString(d.Row), rowString(want))
		}
	}
}

func TestMerge_Overlapping(t *testing.T) {
	c := updateConflict()
	c.Client = order(7, "client", "9.90", 3)  // note and qty
	c.Server = order(7, "server", "12.00", 1) // note and total
	for _, tc := range []struct {
		tb      Tiebreak
		outcome string
		row     cdc.Row
	}{
		{TiebreakServer, syncproto.OutcomeMerged, order(7, "server", "12.00", 3)},
		{TiebreakClient, syncproto.OutcomeMerged, order(7, "client", "12.00", 3)},
		{TiebreakManual, syncproto.OutcomeManual, nil},
	} {
		r := Rules{Tables: map[string]TablePolicy{orders.Name: {Policy: Merge, Tiebreak: tc.tb}}}
		d, _, err := r.Resolve(context.Background(), c)
		if err != nil || d.Outcome != tc.outcome || rowString(d.Row) != rowString(tc.row) {
			t.Errorf("tiebreak %s: %s %s %v, want %s %s", tc.tb, d.Outcome, rowString(d.Row), err, tc.outcome, rowString(tc.row))
		}
	}
}

func TestMerge_SameValueBothSidesIsNoOverlap(t *testing.T) {
	c := updateConflict()
	c.Client = order(7, "same", "9.90", 1)
	c.Server = order(7, "same", "9.90", 1)
	d := ThreeWayMerge(c, TiebreakManual)
	if d.Outcome != syncproto.OutcomeMerged || rowString(d.Row) != rowString(c.Server) {
		t.Fatalf("%s %s", d.Outcome, rowString(d.Row))
	}
}

func TestMerge_InsertVsInsert(t *testing.T) {
	c := updateConflict()
	c.Kind, c.Op, c.Base = InsertVsInsert, cdc.OpInsert, nil
	c.Client = order(7, "client", "1.00", 1)
	c.Server = order(7, "server", "1.00", 1)
	// No base: every differing field overlaps; equal fields are kept.
	if d := ThreeWayMerge(c, TiebreakClient); d.Outcome != syncproto.OutcomeMerged || rowString(d.Row) != rowString(c.Client) {
		t.Errorf("client tiebreak: %s %s", d.Outcome, rowString(d.Row))
	}
	if d := ThreeWayMerge(c, TiebreakServer); rowString(d.Row) != rowString(c.Server) {
		t.Errorf("server tiebreak: %s %s", d.Outcome, rowString(d.Row))
	}
	if d := ThreeWayMerge(c, TiebreakManual); d.Outcome != syncproto.OutcomeManual {
		t.Errorf("manual tiebreak: %s", d.Outcome)
	}
	// Under lww an insert-vs-insert is decided by time like any other conflict.
	c.ClientTime = c.Latest.CommitTime.Add(time.Second)
	if d, _, _ := (Rules{}).Resolve(context.Background(), c); d.Outcome != syncproto.OutcomeClientWon {
		t.Errorf("lww insert vs insert: %s", d.Outcome)
	}
}

func TestMerge_DeleteVsUpdate(t *testing.T) {
	c := updateConflict()
	c.Kind, c.Op, c.Client = DeleteVsUpdate, cdc.OpDelete, nil
	for tb, want := range map[Tiebreak]string{
		TiebreakServer: syncproto.OutcomeServerWon,
		TiebreakClient: syncproto.OutcomeClientWon,
		TiebreakManual: syncproto.OutcomeManual,
	} {
		if d := ThreeWayMerge(c, tb); d.Outcome != want || d.Row != nil {
			t.Errorf("edge delete, tiebreak %s: %s %s, want %s", tb, d.Outcome, rowString(d.Row), want)
		}
	}
	c = updateConflict()
	c.Kind, c.Server = UpdateVsDelete, nil
	if d := ThreeWayMerge(c, TiebreakClient); d.Outcome != syncproto.OutcomeClientWon {
		t.Errorf("server delete, client tiebreak: %s", d.Outcome)
	}
}

func TestResolve_Custom(t *testing.T) {
	var seen Conflict
	maxQty := ResolverFunc(func(_ context.Context, c Conflict) (Decision, error) {
		seen = c
		cq, _ := c.Client.Get("qty")
		sq, _ := c.Server.Get("qty")
		if cq.AsInt() >= sq.AsInt() {
			return Decision{Outcome: syncproto.OutcomeClientWon}, nil
		}
		return Decision{Outcome: syncproto.OutcomeMerged, Row: order(7, "max", "0", sq.AsInt())}, nil
	})
	r := Rules{
		Tables:    map[string]TablePolicy{orders.Name: {Policy: CustomPrefix + "maxqty"}},
		Resolvers: map[string]Resolver{"maxqty": maxQty},
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	c := updateConflict()
	c.Server = order(7, "base", "9.90", 5)
	d, p, err := r.Resolve(context.Background(), c)
	if err != nil || d.Outcome != syncproto.OutcomeMerged || rowString(d.Row) != rowString(order(7, "max", "0", 5)) || p.Policy != "custom:maxqty" {
		t.Fatalf("custom: %+v %+v %v", d, p, err)
	}
	if seen.Edge != "till-1" || rowString(seen.Base) != rowString(c.Base) {
		t.Fatalf("resolver saw %+v", seen)
	}

	bad := Rules{Tables: r.Tables, Resolvers: map[string]Resolver{"maxqty": ResolverFunc(func(context.Context, Conflict) (Decision, error) {
		return Decision{Outcome: "whatever"}, nil
	})}}
	if _, _, err := bad.Resolve(context.Background(), c); err == nil || !strings.Contains(err.Error(), "whatever") {
		t.Fatalf("invalid decision accepted: %v", err)
	}
	failing := Rules{Tables: r.Tables, Resolvers: map[string]Resolver{"maxqty": ResolverFunc(func(context.Context, Conflict) (Decision, error) {
		return Decision{}, errors.New("boom")
	})}}
	if _, _, err := failing.Resolve(context.Background(), c); err == nil || err.Error() != "boom" {
		t.Fatalf("resolver error: %v", err)
	}
}

func TestRules_Validate(t *testing.T) {
	for _, tc := range []struct {
		rules Rules
		want  string // substring of the error; "" for valid
	}{
		{Rules{}, ""},
		{Rules{Tables: map[string]TablePolicy{"public.a": {Policy: Merge, Tiebreak: TiebreakManual}}}, ""},
		{Rules{Tables: map[string]TablePolicy{"public.a": {Policy: "newest"}}}, `table public.a: "newest" is not a policy; use lww, server-wins`},
		{Rules{Tables: map[string]TablePolicy{"public.a": {Policy: Merge, Tiebreak: "coin"}}}, `tiebreak of table public.a: "coin"`},
		{Rules{Tables: map[string]TablePolicy{"public.a": {Policy: "custom:x"}}}, `"custom:x" names no registered resolver`},
		{Rules{Default: TablePolicy{Policy: "first"}}, "default policy"},
		{Rules{Tables: map[string]TablePolicy{"": {Policy: LWW}}}, "table name is empty"},
	} {
		err := tc.rules.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.rules, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: %v, want %q", tc.rules, err, tc.want)
		}
	}
}
