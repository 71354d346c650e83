package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synchub/synchub/edge"
	"github.com/synchub/synchub/hub"
	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/conflict"
)

// pushSchema has a table per conflict policy, so one stack tests them all, plus a
// parent/child pair for foreign-key rejections and a write counter the test reads to
// prove a change was written to PostgreSQL once.
const pushSchema = `
CREATE TABLE public.writes (tbl text NOT NULL, id int NOT NULL, n int NOT NULL DEFAULT 0, PRIMARY KEY (tbl, id));
CREATE FUNCTION count_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.writes (tbl, id, n) VALUES (TG_TABLE_NAME, NEW.id, 1)
  ON CONFLICT (tbl, id) DO UPDATE SET n = writes.n + 1;
  RETURN NEW;
END $$;
CREATE TABLE public.lww_notes (id int PRIMARY KEY, title text, body text, n int NOT NULL DEFAULT 0);
CREATE TABLE public.server_notes (LIKE public.lww_notes INCLUDING ALL);
CREATE TABLE public.client_notes (LIKE public.lww_notes INCLUDING ALL);
CREATE TABLE public.merge_notes (LIKE public.lww_notes INCLUDING ALL);
CREATE TABLE public.manual_notes (LIKE public.lww_notes INCLUDING ALL);
INSERT INTO public.lww_notes SELECT g, 'title ' || g, 'body ' || g, 0 FROM generate_series(1, 5) g;
INSERT INTO public.server_notes SELECT * FROM public.lww_notes;
INSERT INTO public.client_notes SELECT * FROM public.lww_notes;
INSERT INTO public.merge_notes SELECT * FROM public.lww_notes;
INSERT INTO public.manual_notes SELECT * FROM public.lww_notes;
CREATE TABLE public.parent (id int PRIMARY KEY, name text);
CREATE TABLE public.child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES public.parent(id), label text);
INSERT INTO public.parent VALUES (1, 'one'), (2, 'two');
CREATE TRIGGER client_count AFTER INSERT OR UPDATE ON public.client_notes FOR EACH ROW EXECUTE FUNCTION count_write();
`

var pushTables = []string{"public.lww_notes", "public.server_notes", "public.client_notes",
	"public.merge_notes", "public.manual_notes", "public.parent", "public.child"}

func pushPolicies() map[string]conflict.TablePolicy {
	return map[string]conflict.TablePolicy{
		"public.lww_notes":    {Policy: conflict.LWW},
		"public.server_notes": {Policy: conflict.ServerWins},
		"public.client_notes": {Policy: conflict.ClientWins},
		"public.merge_notes":  {Policy: conflict.Merge, Tiebreak: conflict.TiebreakServer},
		"public.manual_notes": {Policy: conflict.Manual},
	}
}

// pushStack is a PostgreSQL stack with write-back and two edges that capture their
// local writes.
func pushStack(t *testing.T) (*stack, *edge.Agent, *edge.Agent) {
	t.Helper()
	s := newStackWith(t, pushSchema, pushTables, func(c *hub.Config) { c.Push.Policies = pushPolicies() })
	a, b := s.newEdge("edge-a"), s.newEdge("edge-b")
	s.waitStreaming()
	for _, e := range []*edge.Agent{a, b} {
		s.syncEdge(e)
		if err := e.InitSyncAll(context.Background()); err != nil {
			t.Fatalf("init sync: %v", err)
		}
	}
	return s, a, b
}

func edgeExec(t testing.TB, a *edge.Agent, query string, args ...any) {
	t.Helper()
	if _, err := a.DB().Exec(query, args...); err != nil {
		t.Fatalf("edge %s: %s: %v", a.Status().EdgeID, query, err)
	}
}

func edgeValue(t testing.TB, a *edge.Agent, query string, args ...any) string {
	t.Helper()
	var v any
	err := a.DB().QueryRow(query, args...).Scan(&v)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return fmt.Sprint(normalise(v))
}

func push(t testing.TB, a *edge.Agent) edge.PushReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := a.PushNow(ctx)
	if err != nil {
		t.Fatalf("push from %s: %v", a.Status().EdgeID, err)
	}
	return rep
}

// auditEvents returns the audit log's events of action on table ("" for any table).
func (s *stack) auditEvents(action, table string) []audit.Event {
	s.t.Helper()
	ev, err := s.audit.Query(context.Background(), audit.Filter{Action: action, Table: table, Limit: 1000})
	if err != nil {
		s.t.Fatalf("audit query: %v", err)
	}
	return ev
}

// TestIntegration_PushConflictPolicies: two edges edit the same row while offline and
// push one after the other; for each policy PostgreSQL and both edges end with the row
// the policy dictates, and the conflict is in the audit log.
func TestIntegration_PushConflictPolicies(t *testing.T) {
	s, a, b := pushStack(t)
	for _, tc := range []struct {
		table, winner string
	}{
		// Edge A pushes first, so its write is the server's state when B's arrives.
		// B wrote after A's commit (see below), so last-writer-wins picks B.
		{"lww_notes", "B"},
		{"server_notes", "A"},
		{"client_notes", "B"},
	} {
		t.Run(tc.table, func(t *testing.T) {
			edgeExec(t, a, `UPDATE `+tc.table+` SET body = 'A' WHERE id = 1`)
			if rep := push(t, a); rep.Applied != 1 {
				t.Fatalf("edge A's push: %+v, want 1 applied", rep)
			}
			time.Sleep(30 * time.Millisecond) // B's write is later than A's commit
			edgeExec(t, b, `UPDATE `+tc.table+` SET body = 'B' WHERE id = 1`)
			if rep := push(t, b); rep.Conflicts != 1 {
				t.Fatalf("edge B's push: %+v, want 1 conflict", rep)
			}
			s.waitHubCaughtUp()
			s.syncEdge(a)
			s.syncEdge(b)
			if got := s.exec(`SELECT body FROM ` + tc.table + ` WHERE id = 1`); got != tc.winner {
				t.Fatalf("PostgreSQL has body %q, want %q", got, tc.winner)
			}
			for _, e := range []*edge.Agent{a, b} {
				if got := edgeValue(t, e, `SELECT body FROM `+tc.table+` WHERE id = 1`); got != tc.winner {
					t.Fatalf("edge %s has body %q, want %q", e.Status().EdgeID, got, tc.winner)
				}
			}
			if ev := s.auditEvents(audit.ActionConflict, "public."+tc.table); len(ev) != 1 || ev[0].Edge != "edge-b" {
				t.Fatalf("audit conflict events for %s: %+v, want one by edge-b", tc.table, ev)
			}
		})
	}

	t.Run("lww_older_client_loses", func(t *testing.T) {
		// B writes first, offline; A writes and pushes later: B's older write loses.
		edgeExec(t, b, `UPDATE lww_notes SET title = 'B first' WHERE id = 2`)
		time.Sleep(30 * time.Millisecond)
		edgeExec(t, a, `UPDATE lww_notes SET title = 'A later' WHERE id = 2`)
		push(t, a)
		if rep := push(t, b); rep.Conflicts != 1 {
			t.Fatalf("edge B's push: %+v, want 1 conflict", rep)
		}
		s.waitHubCaughtUp()
		s.syncEdge(b)
		if got := s.exec(`SELECT title FROM lww_notes WHERE id = 2`); got != "A later" {
			t.Fatalf("PostgreSQL has %q, want the later write 'A later'", got)
		}
		if got := edgeValue(t, b, `SELECT title FROM lww_notes WHERE id = 2`); got != "A later" {
			t.Fatalf("edge B has %q after losing, want 'A later'", got)
		}
	})

	t.Run("manual", func(t *testing.T) {
		edgeExec(t, a, `UPDATE manual_notes SET body = 'A' WHERE id = 1`)
		push(t, a)
		edgeExec(t, b, `UPDATE manual_notes SET body = 'B' WHERE id = 1`)
		rep := push(t, b)
		if rep.Conflicts != 1 {
			t.Fatalf("edge B's push: %+v, want 1 conflict", rep)
		}
		s.waitHubCaughtUp()
		if got := s.exec(`SELECT body FROM manual_notes WHERE id = 1`); got != "A" {
			t.Fatalf("PostgreSQL has %q while the conflict is open, want the server's 'A'", got)
		}
		var list struct {
			Conflicts []struct {
				ID int64 `json:"id"`
			} `json:"conflicts"`
		}
		getJSON(t, s.url+"/v1/conflicts?status=open&table=public.manual_notes", &list)
		if len(list.Conflicts) != 1 {
			t.Fatalf("open conflicts: %+v, want 1", list)
		}
		postJSON(t, fmt.Sprintf("%s/v1/conflicts/%d/resolve", s.url, list.Conflicts[0].ID),
			`{"action":"take_client","actor":"alice"}`, http.StatusOK)
		s.waitHubCaughtUp()
		s.syncEdge(a)
		s.syncEdge(b)
		if got := s.exec(`SELECT body FROM manual_notes WHERE id = 1`); got != "B" {
			t.Fatalf("PostgreSQL has %q after take_client, want 'B'", got)
		}
		for _, e := range []*edge.Agent{a, b} {
			if got := edgeValue(t, e, `SELECT body FROM manual_notes WHERE id = 1`); got != "B" {
				t.Fatalf("edge %s has %q after the resolution, want 'B'", e.Status().EdgeID, got)
			}
		}
		ev := s.auditEvents(audit.ActionResolve, "public.manual_notes")
		if len(ev) != 1 || ev[0].Actor != audit.AdminActor("alice") {
			t.Fatalf("audit resolve events: %+v, want one by admin alice", ev)
		}
	})

	t.Run("merge", func(t *testing.T) {
		// The edge changes title, the server changes body of the same row: both kept.
		edgeExec(t, a, `UPDATE merge_notes SET title = 'edge title' WHERE id = 3`)
		s.exec(`UPDATE merge_notes SET body = 'server body' WHERE id = 3`)
		s.waitHubCaughtUp()
		if rep := push(t, a); rep.Conflicts != 1 {
			t.Fatalf("push: %+v, want 1 conflict (resolved by merge)", rep)
		}
		s.waitHubCaughtUp()
		if got := s.exec(`SELECT title || '|' || body FROM merge_notes WHERE id = 3`); got != "edge title|server body" {
			t.Fatalf("PostgreSQL has %q, want both changes kept", got)
		}
		s.syncEdge(a)
		if got := edgeValue(t, a, `SELECT title || '|' || body FROM merge_notes WHERE id = 3`); got != "edge title|server body" {
			t.Fatalf("edge has %q, want both changes kept", got)
		}
	})
}

// TestIntegration_PushDeleteVsUpdateAndInsertVsInsert: a delete on one edge against an
// update on another, and the same new key inserted on both.
func TestIntegration_PushDeleteVsUpdateAndInsertVsInsert(t *testing.T) {
	s, a, b := pushStack(t)
	edgeExec(t, a, `DELETE FROM server_notes WHERE id = 4`)
	edgeExec(t, b, `UPDATE server_notes SET body = 'B keeps it' WHERE id = 4`)
	edgeExec(t, a, `INSERT INTO client_notes (id, title, body, n) VALUES (100, 'from A', 'A', 1)`)
	edgeExec(t, b, `INSERT INTO client_notes (id, title, body, n) VALUES (100, 'from B', 'B', 2)`)
	push(t, a)
	rep := push(t, b)
	if rep.Conflicts != 2 {
		t.Fatalf("edge B's push: %+v, want 2 conflicts (update of a deleted row, insert of an existing key)", rep)
	}
	s.waitHubCaughtUp()
	s.syncEdge(a)
	s.syncEdge(b)
	// server_notes is server-wins: the delete stands. client_notes is client-wins: B's insert wins.
	if got := s.exec(`SELECT count(*) FROM server_notes WHERE id = 4`); got != "0" {
		t.Fatalf("server-wins delete vs update: PostgreSQL has %s rows, want the delete to stand", got)
	}
	if got := s.exec(`SELECT title FROM client_notes WHERE id = 100`); got != "from B" {
		t.Fatalf("client-wins insert vs insert: PostgreSQL has %q, want 'from B'", got)
	}
	for _, e := range []*edge.Agent{a, b} {
		if got := edgeValue(t, e, `SELECT count(*) FROM server_notes WHERE id = 4`); got != "0" {
			t.Fatalf("edge %s still has the deleted row (%s)", e.Status().EdgeID, got)
		}
		if got := edgeValue(t, e, `SELECT title FROM client_notes WHERE id = 100`); got != "from B" {
			t.Fatalf("edge %s has %q for the twice-inserted key, want 'from B'", e.Status().EdgeID, got)
		}
	}
	if ev := s.auditEvents(audit.ActionConflict, ""); len(ev) != 2 {
		t.Fatalf("audit has %d conflict events, want 2", len(ev))
	}
}

// TestIntegration_PushForeignKeyRejected: one change of a batch violates a foreign key;
// it is rejected with PostgreSQL's reason, the others are applied, and the edge keeps
// the rejected change in its rejected table.
func TestIntegration_PushForeignKeyRejected(t *testing.T) {
	s, a, _ := pushStack(t)
	edgeExec(t, a, `INSERT INTO child VALUES (1, 1, 'ok one')`)
	edgeExec(t, a, `INSERT INTO child VALUES (2, 99, 'no such parent')`)
	edgeExec(t, a, `INSERT INTO child VALUES (3, 2, 'ok two')`)
	rep := push(t, a)
	if rep.Applied != 2 || rep.Rejected != 1 {
		t.Fatalf("push: %+v, want 2 applied and 1 rejected", rep)
	}
	if got := s.exec(`SELECT string_agg(id::text, ',' ORDER BY id) FROM child`); got != "1,3" {
		t.Fatalf("PostgreSQL children %q, want 1,3", got)
	}
	var reason string
	if err := a.DB().QueryRow(`SELECT reason FROM _synchub_rejected WHERE tbl = 'public.child'`).Scan(&reason); err != nil {
		t.Fatalf("rejected table on the edge: %v", err)
	}
	if !strings.Contains(reason, "child_parent_id_fkey") {
		t.Fatalf("rejection reason %q does not name the violated constraint", reason)
	}
	if ev := s.auditEvents(audit.ActionReject, "public.child"); len(ev) != 1 {
		t.Fatalf("audit reject events: %+v, want 1", ev)
	}
	if st := a.Status(); st.Pending != 0 || st.RejectedTotal != 1 {
		t.Fatalf("edge status pending %d rejected %d, want 0 and 1", st.Pending, st.RejectedTotal)
	}
}

// TestIntegration_PushEcho: after a push the pushing edge equals PostgreSQL without
// re-applying its own change as a foreign one; the other edge receives it with origin
// = the first edge.
func TestIntegration_PushEcho(t *testing.T) {
	s, a, b := pushStack(t)
	foreignBefore := a.Status().AppliedForeign
	edgeExec(t, a, `UPDATE lww_notes SET body = 'echo me', n = 42 WHERE id = 5`)
	if rep := push(t, a); rep.Applied != 1 {
		t.Fatalf("push: %+v, want 1 applied", rep)
	}
	s.waitHubCaughtUp()
	s.syncEdge(a)
	s.syncEdge(b)
	if got := a.Status().AppliedForeign - foreignBefore; got != 0 {
		t.Fatalf("edge A applied %d foreign changes after its own push, want 0 (its own change is an echo)", got)
	}
	if a.Status().EchoesSkipped == 0 {
		t.Fatal("edge A did not see its own change come back as an echo")
	}
	info, ok, err := s.store.Row(context.Background(), "public.lww_notes", "[5]")
	if err != nil || !ok || info.Origin != "edge-a" {
		t.Fatalf("change log row origin: %+v %v %v, want origin edge-a", info, ok, err)
	}
	for _, e := range []*edge.Agent{a, b} {
		if got := edgeValue(t, e, `SELECT body || n FROM lww_notes WHERE id = 5`); got != "echo me42" {
			t.Fatalf("edge %s has %q, want 'echo me42'", e.Status().EdgeID, got)
		}
	}
	s.assertEdgeEqualsSource(a)
	s.assertEdgeEqualsSource(b)
}

// TestIntegration_PushIdempotent: the hub commits a batch but the response is lost (the
// connection drops); the edge re-sends the same batch id and the change is written once.
func TestIntegration_PushIdempotent(t *testing.T) {
	s, _, _ := pushStack(t)
	var drops atomic.Int32
	proxy := dropFirstPushResponse(t, s.url, &drops)
	a := s.newEdgeAt("edge-c", proxy)
	s.syncEdge(a)
	if err := a.InitSyncAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	edgeExec(t, a, `UPDATE client_notes SET n = n + 1 WHERE id = 2`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := a.PushNow(ctx); err == nil {
		t.Fatal("first push: want an error, the response was dropped")
	}
	if drops.Load() != 1 {
		t.Fatalf("proxy dropped %d responses, want 1", drops.Load())
	}
	if rep := push(t, a); rep.Applied != 1 {
		t.Fatalf("second push: %+v, want the stored answer: 1 applied", rep)
	}
	s.waitHubCaughtUp()
	if got := s.exec(`SELECT n FROM writes WHERE tbl = 'client_notes' AND id = 2`); got != "1" {
		t.Fatalf("PostgreSQL saw %s writes of the row, want exactly 1", got)
	}
	if got := s.exec(`SELECT n FROM client_notes WHERE id = 2`); got != "1" {
		t.Fatalf("row n = %s, want 1", got)
	}
}

// TestIntegration_PushClockSkew: an edge whose clock runs 10 minutes ahead does not win
// every last-writer-wins conflict: a server write made after its edit still wins.
func TestIntegration_PushClockSkew(t *testing.T) {
	s, _, _ := pushStack(t)
	a := s.newEdgeWith("edge-fast", func(c *edge.Config) {
		c.ClockSkew = 10 * time.Minute
	})
	s.syncEdge(a)
	if err := a.InitSyncAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	edgeExec(t, a, `UPDATE lww_notes SET body = 'fast clock' WHERE id = 3`)
	time.Sleep(50 * time.Millisecond)
	s.exec(`UPDATE lww_notes SET body = 'server, later' WHERE id = 3`)
	s.waitHubCaughtUp()
	if rep := push(t, a); rep.Conflicts != 1 {
		t.Fatalf("push: %+v, want 1 conflict", rep)
	}
	s.waitHubCaughtUp()
	if got := s.exec(`SELECT body FROM lww_notes WHERE id = 3`); got != "server, later" {
		t.Fatalf("PostgreSQL has %q: the edge with a clock 10 minutes ahead won against a later server write", got)
	}
	// And it still wins when its write really is the later one.
	s.syncEdge(a)
	s.exec(`UPDATE lww_notes SET body = 'server, earlier' WHERE id = 4`)
	s.waitHubCaughtUp()
	time.Sleep(50 * time.Millisecond)
	edgeExec(t, a, `UPDATE lww_notes SET body = 'fast clock, later' WHERE id = 4`)
	push(t, a)
	s.waitHubCaughtUp()
	if got := s.exec(`SELECT body FROM lww_notes WHERE id = 4`); got != "fast clock, later" {
		t.Fatalf("PostgreSQL has %q, want the edge's later write", got)
	}
}

// dropFirstPushResponse starts a loopback proxy to target that forwards every request,
// but for the first POST /v1/push while drops is 0 closes the client's connection after
// the hub answered, so the edge never sees the answer (drops becomes 1).
func dropFirstPushResponse(t testing.TB, target string, drops *atomic.Int32) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/push" && drops.CompareAndSwap(0, 1) {
			body, _ := io.ReadAll(r.Body)
			req, _ := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.RequestURI(), bytes.NewReader(body))
			req.Header = r.Header.Clone()
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

func getJSON(t testing.TB, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
}

func postJSON(t testing.TB, url, body string, want int) []byte {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("POST %s: %d %s, want %d", url, resp.StatusCode, out, want)
	}
	return out
}
