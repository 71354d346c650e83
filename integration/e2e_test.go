package integration

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc/postgres/pgtest"
)

const typesSchema = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE public.items (
    id      bigint PRIMARY KEY,
    i2      smallint, i4 integer, i8 bigint,
    num     numeric, money numeric(40,10),
    r4      real, r8 double precision,
    flag    boolean,
    t       text, vc varchar(50), ch char(3),
    raw     bytea,
    u       uuid,
    j       json, jb jsonb,
    d       date, tm time, ts timestamp, tstz timestamptz,
    iv      interval,
    arr     text[], nums integer[],
    m       mood,
    big     text
);
CREATE TABLE public.orders (
    id      bigserial PRIMARY KEY,
    item_id bigint NOT NULL,
    qty     integer NOT NULL,
    note    text
);
ALTER TABLE public.items ALTER COLUMN big SET STORAGE EXTERNAL;
`

var typesTables = []string{"public.items", "public.orders"}

const typesRow = `INSERT INTO public.items VALUES (%d,
    -32768, 2147483647, 9223372036854775807,
    '123456789012345678901234567890.1234567890', -12345678901234567890.0123456789,
    3.25, 1.0000000000000002,
    true,
    'héllo 🌍 "quoted" \ back', 'varchar', 'ab',
    '\x00ff00'::bytea,
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    '{"a": [1, 2.50]}', '{"b": {"c": null}}',
    '2024-02-29', '23:59:59.999999', '2024-01-02 03:04:05.123456', '2024-06-01 12:00:00+05:30',
    '1 year 2 mons 3 days 04:05:06',
    ARRAY['x', NULL, 'y,"z"'], ARRAY[1, -2, 3],
    'happy', NULL)`

// TestIntegration_PostgresEndToEnd: snapshot then stream of every kind of change, with
// every mapped type, reaching two edges that end equal to PostgreSQL row for row.
func TestIntegration_PostgresEndToEnd(t *testing.T) {
	s := newStack(t, typesSchema+fmt.Sprintf(typesRow, 1)+";"+fmt.Sprintf(typesRow, 2)+
		";INSERT INTO public.items (id) VALUES (3);INSERT INTO public.orders (item_id, qty) VALUES (1, 5)", typesTables)
	a, b := s.newEdge("a"), s.newEdge("b")
	s.waitStreaming()
	s.syncEdge(a)
	s.assertEdgeEqualsSource(a)

	runEdge(t, b)
	s.exec(fmt.Sprintf(typesRow, 10))
	s.exec(`UPDATE public.items SET t = 'changed ✓', num = '-0.000000000000000000000000000001', flag = NULL WHERE id = 1`)
	s.exec(`DELETE FROM public.items WHERE id = 2`)
	s.exec(`INSERT INTO public.orders (item_id, qty) SELECT 1, g FROM generate_series(1, 50) g`)
	s.exec(`UPDATE public.items SET id = 11 WHERE id = 10`)
	s.exec(`UPDATE public.items SET r8 = 'NaN', r4 = '-Infinity', i8 = -9223372036854775808 WHERE id = 3`)
	s.waitHubCaughtUp()
	s.syncEdge(a)
	s.assertEdgeEqualsSource(a)

	s.exec(`TRUNCATE public.orders`)
	s.exec(`INSERT INTO public.orders (item_id, qty) VALUES (3, 1)`)
	s.waitHubCaughtUp()
	s.syncEdge(a)
	s.assertEdgeEqualsSource(a)
	if n := count(t, a.DB(), "orders"); n != 1 {
		t.Fatalf("after truncate + insert the edge has %d orders, want 1", n)
	}
	head := s.head()
	pgtest.WaitFor(t, 30*time.Second, "running edge b reaches the head", func() bool { return b.Status().Watermark >= head })
	s.assertEdgeEqualsSource(b)
}

func count(t testing.TB, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM "` + table + `"`).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// TestIntegration_TransactionsStayWhole: a 3-statement transaction is one version, and a
// reader of the edge database never sees part of it while the edge follows the stream.
func TestIntegration_TransactionsStayWhole(t *testing.T) {
	s := newStack(t, `CREATE TABLE public.acct (id int PRIMARY KEY, bal bigint NOT NULL);
		INSERT INTO public.acct SELECT g, 1000 FROM generate_series(1, 10) g;`, []string{"public.acct"})
	a := s.newEdge("a")
	s.waitStreaming()
	s.syncEdge(a)
	before := s.head()
	// Money moves between accounts in 3-statement transactions; the total never changes.
	s.exec(`BEGIN; UPDATE acct SET bal = bal - 7 WHERE id = 1; UPDATE acct SET bal = bal + 3 WHERE id = 2; UPDATE acct SET bal = bal + 4 WHERE id = 3; COMMIT;`)
	s.waitHubCaughtUp()
	if got := s.head() - before; got != 1 {
		t.Fatalf("a 3-statement transaction became %d versions, want 1", got)
	}
	runEdge(t, a)
	w := watch(a.DB(), `SELECT coalesce(sum(bal), 0) FROM acct`, func(sum int64) bool { return sum == 10000 })
	for i := 0; i < 100; i++ {
		from, to := 1+i%10, 1+(i+3)%10
		s.exec(fmt.Sprintf(`BEGIN; UPDATE acct SET bal = bal - 5 WHERE id = %d; UPDATE acct SET bal = bal + 2 WHERE id = %d; UPDATE acct SET bal = bal + 3 WHERE id = %d; COMMIT;`, from, to, 1+(i+5)%10))
	}
	s.waitHubCaughtUp()
	head := s.head()
	pgtest.WaitFor(t, 30*time.Second, "edge reaches head", func() bool { return a.Status().Watermark >= head })
	checks, bad := w.finish()
	if checks == 0 {
		t.Fatal("the reader never managed to read the edge database")
	}
	if bad > 0 {
		t.Fatalf("a reader saw a half-applied transaction %d times out of %d reads", bad, checks)
	}
	s.assertEdgeEqualsSource(a)
}

// TestIntegration_ToastUnchanged: updating another column of a row whose 100 KB text is
// TOASTed keeps that text on the edge (PostgreSQL sends it as "unchanged").
func TestIntegration_ToastUnchanged(t *testing.T) {
	s := newStack(t, `CREATE TABLE public.docs (id int PRIMARY KEY, title text, body text);
		ALTER TABLE public.docs ALTER COLUMN body SET STORAGE EXTERNAL;`, []string{"public.docs"})
	a := s.newEdge("a")
	s.waitStreaming()
	// Incompressible 100 KB text, so PostgreSQL stores it out of line.
	s.exec(`INSERT INTO docs SELECT 1, 'v1', string_agg(md5(g::text), '') FROM generate_series(1, 3200) g`)
	s.exec(`UPDATE docs SET title = 'v2' WHERE id = 1`)
	s.exec(`UPDATE docs SET title = 'v3' WHERE id = 1`)
	s.waitHubCaughtUp()
	// A fresh edge bootstraps from the log; one that followed along applies the updates.
	s.syncEdge(a)
	var title string
	var n int
	if err := a.DB().QueryRow(`SELECT title, length(body) FROM docs WHERE id = 1`).Scan(&title, &n); err != nil {
		t.Fatal(err)
	}
	if title != "v3" || n != 3200*32 {
		t.Fatalf("edge row: title %q, body length %d; want v3 and %d", title, n, 3200*32)
	}
	s.exec(`UPDATE docs SET title = 'v4' WHERE id = 1`)
	s.waitHubCaughtUp()
	s.syncEdge(a)
	s.assertEdgeEqualsSource(a)
}

// TestIntegration_LargeTransaction: a 200,000-row transaction reaches the edge whole and
// is never partly visible.
func TestIntegration_LargeTransaction(t *testing.T) {
	if testing.Short() {
		t.Skip("large transaction test skipped in -short mode")
	}
	s := newStack(t, `CREATE TABLE public.big (id int PRIMARY KEY, v text);`, []string{"public.big"})
	a := s.newEdge("a")
	s.waitStreaming()
	s.syncEdge(a)
	runEdge(t, a)
	w := watch(a.DB(), `SELECT count(*) FROM big`, func(n int64) bool { return n == 0 || n == 200000 })
	s.exec(`INSERT INTO big SELECT g, 'row ' || g FROM generate_series(1, 200000) g`)
	s.waitHubCaughtUp()
	head := s.head()
	pgtest.WaitFor(t, 2*time.Minute, "edge applies the large transaction", func() bool { return a.Status().Watermark >= head })
	checks, bad := w.finish()
	if checks == 0 {
		t.Fatal("the reader never managed to read the edge database")
	}
	if bad > 0 {
		t.Fatalf("a reader saw the 200,000-row transaction partly applied %d times out of %d reads", bad, checks)
	}
	if n := count(t, a.DB(), "big"); n != 200000 {
		t.Fatalf("edge has %d rows, want 200000", n)
	}
}

// TestIntegration_SchemaChange: ALTER TABLE ADD COLUMN mid-stream reaches the edge
// without a re-bootstrap, and later rows carry the column.
func TestIntegration_SchemaChange(t *testing.T) {
	s := newStack(t, `CREATE TABLE public.people (id int PRIMARY KEY, name text);
		INSERT INTO people VALUES (1, 'ann');`, []string{"public.people"})
	a := s.newEdge("a")
	s.waitStreaming()
	s.syncEdge(a)
	v0 := a.Status().SchemaVersion
	s.exec(`ALTER TABLE people ADD COLUMN email text`)
	s.exec(`ALTER TABLE people ADD COLUMN score numeric(5,1) NOT NULL DEFAULT 2.5, ADD COLUMN tag text DEFAULT 'it''s new'`)
	s.exec(`INSERT INTO people VALUES (2, 'bob', 'bob@example.com')`)
	s.exec(`UPDATE people SET email = 'ann@example.com' WHERE id = 1`)
	s.waitHubCaughtUp()
	s.syncEdge(a)
	if a.Status().SchemaVersion <= v0 {
		t.Fatalf("edge schema version %d did not move past %d", a.Status().SchemaVersion, v0)
	}
	var email string
	if err := a.DB().QueryRow(`SELECT email FROM people WHERE id = 2`).Scan(&email); err != nil || email != "bob@example.com" {
		t.Fatalf("new column on edge: %q, %v", email, err)
	}
	var score, tag string
	if err := a.DB().QueryRow(`SELECT score, tag FROM people WHERE id = 1`).Scan(&score, &tag); err != nil || score != "2.5" || tag != "it's new" {
		t.Fatalf("a row from before ADD COLUMN … DEFAULT has score %q, tag %q (%v) on the edge; want the default 2.5, it's new", score, tag, err)
	}
	s.exec(`ALTER TABLE people DROP COLUMN name`)
	s.exec(`INSERT INTO people VALUES (3, 'cy@example.com')`)
	s.waitHubCaughtUp()
	s.syncEdge(a)
	if n := count(t, a.DB(), "people"); n != 3 {
		t.Fatalf("edge has %d people, want 3", n)
	}
	var sch string
	if err := a.DB().QueryRow(`SELECT group_concat(name) FROM pragma_table_info('people')`).Scan(&sch); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sch, "name") {
		t.Fatalf("dropped column still on the edge: %s", sch)
	}
	s.assertEdgeEqualsSource(a)
}

// TestIntegration_PostgresRestart: the hub reconnects after PostgreSQL restarts and no
// transaction is lost or doubled.
func TestIntegration_PostgresRestart(t *testing.T) {
	s := newStack(t, `CREATE TABLE public.seq (n int PRIMARY KEY);`, []string{"public.seq"})
	a := s.newEdge("a")
	s.waitStreaming()
	for i := 1; i <= 20; i++ {
		s.exec(fmt.Sprintf(`INSERT INTO seq VALUES (%d)`, i))
	}
	ctx := context.Background()
	if err := s.pg.StopServer(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	pgtest.WaitFor(t, 30*time.Second, "hub notices PostgreSQL is gone", func() bool {
		return !strings.HasPrefix(s.hub.Status().SourceState, "streaming")
	})
	if err := s.pg.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 21; i <= 40; i++ {
		s.exec(fmt.Sprintf(`INSERT INTO seq VALUES (%d)`, i))
	}
	s.waitStreaming()
	s.waitHubCaughtUp()
	s.syncEdge(a)
	if n := count(t, a.DB(), "seq"); n != 40 {
		t.Fatalf("edge has %d rows after the restart, want 40", n)
	}
	// The snapshot is version 1 and each insert one more version: nothing doubled.
	if h := s.head(); h != 41 {
		t.Fatalf("change log head is %d after 40 single-row transactions and the snapshot, want 41", h)
	}
	s.assertEdgeEqualsSource(a)
}

// watcher reads one integer from the edge database over and over, from its own
// goroutine, and counts the reads and the values that a consistent edge could not show.
type watcher struct {
	checks, bad atomic.Int64
	stop        chan struct{}
	wg          sync.WaitGroup
}

func watch(db *sql.DB, query string, ok func(int64) bool) *watcher {
	w := &watcher{stop: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(time.Millisecond):
			}
			var n int64
			if err := db.QueryRow(query).Scan(&n); err == nil {
				w.checks.Add(1)
				if !ok(n) {
					w.bad.Add(1)
				}
			}
		}
	}()
	return w
}

// finish stops the watcher and returns how many reads it made and how many were bad.
func (w *watcher) finish() (checks, bad int64) {
	close(w.stop)
	w.wg.Wait()
	return w.checks.Load(), w.bad.Load()
}
