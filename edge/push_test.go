package edge

import (
	"context"
	"database/sql"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
	"github.com/synchub/synchub/metrics"
)

// pullOnly pulls until caught up without pushing.
func pullOnly(t testing.TB, a *Agent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 1000 {
		res, err := a.step(ctx, 0)
		if err != nil {
			t.Fatalf("pull: %v", err)
		}
		if res.caughtUp {
			return
		}
	}
	t.Fatal("pull did not catch up in 1000 steps")
}

func pushNow(t testing.TB, a *Agent) PushReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := a.PushNow(ctx)
	if err != nil {
		t.Fatalf("PushNow: %v", err)
	}
	return rep
}

// appExec writes through a separate connection pool, as the application would.
func appExec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("application write %q: %v", q, err)
	}
}

type outRow struct {
	seq         int64
	tbl, ktext  string
	key         string
	op          string
	row         sql.NullString
	baseVersion int64
	base        sql.NullString
	wall        int64
	batch       sql.NullString
}

func readOutboxRows(t testing.TB, db *sql.DB) []outRow {
	t.Helper()
	rows, err := db.Query(`SELECT seq, tbl, ktext, key_json, op, row_json, base_version, base_json, wall, batch_id FROM _synchub_outbox ORDER BY seq`)
	if err != nil {
		t.Fatalf("read outbox: %v", err)
	}
	defer rows.Close()
	var out []outRow
	for rows.Next() {
		var r outRow
		if err := rows.Scan(&r.seq, &r.tbl, &r.ktext, &r.key, &r.op, &r.row, &r.baseVersion, &r.base, &r.wall, &r.batch); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// syncedItems returns an agent syncing public.items with rows 1 and 2 at version 1,
// row 2 updated at version 2 (a streamed change, so it has its own row version), and
// local writes captured.
func syncedItems(t *testing.T, mutate ...func(*Config)) (*fakeHub, *Agent, *sql.DB) {
	t.Helper()
	h := newFakeHub(t, itemsTable())
	h.commit(0, ins(1, "one"), ins(2, "two"))
	a, path := newAgent(t, h, mutate...)
	pullOnly(t, a)
	h.commit(0, upd(2, "two v2"))
	pullOnly(t, a)
	if err := a.InitSync(context.Background(), "items"); err != nil {
		t.Fatalf("InitSync: %v", err)
	}
	return h, a, reader(t, path)
}

func jsonEq(t testing.TB, what string, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %q is not JSON: %v", what, got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: want %q is not JSON: %v", what, want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("%s = %s, want %s", what, gb, wb)
	}
}

func TestPush_Collapse(t *testing.T) {
	h, a, db := syncedItems(t)
	// insert + update → insert of the final row
	appExec(t, db, `INSERT INTO items (id, name, price) VALUES (5, 'five', '5.00')`)
	appExec(t, db, `UPDATE items SET name = 'five b' WHERE id = 5`)
	// insert + update + delete → nothing
	appExec(t, db, `INSERT INTO items (id, name, price) VALUES (6, 'six', '6.00')`)
	appExec(t, db, `UPDATE items SET name = 'six b' WHERE id = 6`)
	appExec(t, db, `DELETE FROM items WHERE id = 6`)
	// update + update → one update from the first base
	appExec(t, db, `UPDATE items SET name = 'one b' WHERE id = 1`)
	appExec(t, db, `UPDATE items SET price = '1.99' WHERE id = 1`)
	// update + delete → delete
	appExec(t, db, `UPDATE items SET name = 'two b' WHERE id = 2`)
	appExec(t, db, `DELETE FROM items WHERE id = 2`)

	rep := pushNow(t, a)
	if rep.Batches != 1 || rep.Sent != 3 || rep.Applied != 3 || rep.Collapsed != 3 || rep.Pending != 0 {
		t.Errorf("report %+v; want 1 batch, 3 sent and applied, 3 collapsed, 0 pending", rep)
	}
	p := h.pushed()
	if len(p) != 1 {
		t.Fatalf("%d pushes, want 1", len(p))
	}
	req := p[0]
	if req.Edge != "test-edge" || req.BatchID == "" || req.SentAt < time.Now().Add(-time.Minute).UnixMicro() {
		t.Errorf("request header: edge=%q batch=%q sent_at=%d", req.Edge, req.BatchID, req.SentAt)
	}
	byKey := map[string]syncproto.PushChange{}
	for _, c := range req.Changes {
		byKey[string(c.Key)] = c
		if c.Table != "public.items" {
			t.Errorf("change %d table %q", c.ID, c.Table)
		}
		if _, err := syncproto.ParseHLC(c.HLC); err != nil || !strings.HasSuffix(c.HLC, "-test-edge") {
			t.Errorf("change %d hlc %q: %v", c.ID, c.HLC, err)
		}
	}
	c5 := byKey[`{"id":5}`]
	if c5.Op != "i" || c5.BaseVersion != 0 || c5.Base != nil {
		t.Errorf("insert+update: %+v", c5)
	}
	jsonEq(t, "insert+update row", c5.Row, `{"id":5,"name":"five b","price":"5.00"}`)
	c1 := byKey[`{"id":1}`]
	if c1.Op != "u" || c1.BaseVersion != 1 {
		t.Errorf("update+update: %+v", c1)
	}
	jsonEq(t, "update+update row", c1.Row, `{"id":1,"name":"one b","price":"1.99"}`)
	jsonEq(t, "update+update base", c1.Base, `{"id":1,"name":"one","price":"1.50"}`)
	c2 := byKey[`{"id":2}`]
	if c2.Op != "d" || c2.BaseVersion != 2 || c2.Row != nil {
		t.Errorf("update+delete: %+v", c2)
	}
	jsonEq(t, "update+delete base", c2.Base, `{"id":2,"name":"two v2","price":"2.50"}`)
	if _, ok := byKey[`{"id":6}`]; ok {
		t.Errorf("insert+update+delete was sent")
	}
	if rows := readOutboxRows(t, db); len(rows) != 0 {
		t.Errorf("outbox after the answer: %+v", rows)
	}
}

func TestPush_DeleteThenInsertIsUpdate(t *testing.T) {
	h, a, db := syncedItems(t)
	appExec(t, db, `DELETE FROM items WHERE id = 1`)
	appExec(t, db, `INSERT INTO items (id, name, price) VALUES (1, 'one again', '9.00')`)
	pushNow(t, a)
	p := h.pushed()
	if len(p) != 1 || len(p[0].Changes) != 1 {
		t.Fatalf("pushes: %+v", p)
	}
	c := p[0].Changes[0]
	if c.Op != "u" || c.BaseVersion != 1 {
		t.Errorf("delete+insert sent as %s base %d; want u base 1", c.Op, c.BaseVersion)
	}
	jsonEq(t, "row", c.Row, `{"id":1,"name":"one again","price":"9.00"}`)
}

func TestPush_LostAnswerResendsSameBatch(t *testing.T) {
	h, a, db := syncedItems(t)
	appExec(t, db, `UPDATE items SET name = 'one local' WHERE id = 1`)
	appExec(t, db, `INSERT INTO items (id, name, price) VALUES (7, 'seven', '7.00')`)

	var mu sync.Mutex
	var during []int // entries of the batch in the outbox while the hub handled each push
	h.onPush = func(n int, req *syncproto.PushRequest) (int, any) {
		rows, err := db.Query(`SELECT batch_id FROM _synchub_outbox`)
		if err != nil {
			h.t.Errorf("read outbox: %v", err)
			return http.StatusInternalServerError, syncproto.Error{Code: "x"}
		}
		k := 0
		for rows.Next() {
			var b sql.NullString
			_ = rows.Scan(&b)
			if b.Valid && b.String == req.BatchID {
				k++
			}
		}
		rows.Close()
		mu.Lock()
		during = append(during, k)
		mu.Unlock()
		if n == 1 {
			return dropConn, nil
		}
		return 0, nil
	}
	ctx := context.Background()
	if _, err := a.PushNow(ctx); err == nil {
		t.Fatal("PushNow succeeded although the answer was lost")
	}
	if st := a.Status(); st.LastPushError == "" || st.Pending != 2 {
		t.Errorf("after the lost answer: last_push_error=%q pending=%d", st.LastPushError, st.Pending)
	}
	// A write after the batch was formed is not part of it.
	appExec(t, db, `UPDATE items SET name = 'two local' WHERE id = 2`)
	rep, err := a.PushNow(ctx)
	if err != nil {
		t.Fatalf("second PushNow: %v", err)
	}
	p := h.pushed()
	if len(p) != 3 {
		t.Fatalf("%d pushes, want 3 (lost, re-sent, next batch)", len(p))
	}
	if p[0].BatchID != p[1].BatchID {
		t.Errorf("re-send has batch id %s, first send %s", p[1].BatchID, p[0].BatchID)
	}
	if string(mustJSON(t, p[0].Changes)) != string(mustJSON(t, p[1].Changes)) {
		t.Errorf("re-sent changes differ:\n%s\n%s", mustJSON(t, p[0].Changes), mustJSON(t, p[1].Changes))
	}
	if p[2].BatchID == p[0].BatchID || len(p[2].Changes) != 1 || string(p[2].Changes[0].Key) != `{"id":2}` {
		t.Errorf("third push: %+v", p[2])
	}
	mu.Lock()
	if len(during) != 3 || during[0] != 2 || during[1] != 2 || during[2] != 1 {
		t.Errorf("outbox entries of the batch while the hub handled each push: %v; want [2 2 1] (kept and marked until the answer)", during)
	}
	mu.Unlock()
	if rep.Batches != 2 || rep.Pending != 0 || len(readOutboxRows(t, db)) != 0 {
		t.Errorf("report %+v, outbox %v", rep, readOutboxRows(t, db))
	}
	if st := a.Status(); st.LastPushError != "" || st.LastPush.IsZero() {
		t.Errorf("status after recovery: %+v", st)
	}
}

func TestPush_BatchIDSurvivesReopen(t *testing.T) {
	h := newFakeHub(t, itemsTable())
	h.commit(0, ins(1, "one"))
	a, path := newAgent(t, h)
	pullOnly(t, a)
	if err := a.InitSync(context.Background(), "public.items"); err != nil {
		t.Fatal(err)
	}
	db := reader(t, path)
	appExec(t, db, `UPDATE items SET name = 'x' WHERE id = 1`)
	h.onPush = dropFirstAnswer
	if _, err := a.PushNow(context.Background()); err == nil {
		t.Fatal("want an error for the lost answer")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b := openAgent(t, testConfig(t, h.url(), path))
	pushNow(t, b)
	p := h.pushed()
	if len(p) != 2 || p[0].BatchID != p[1].BatchID || p[0].Changes[0].HLC != p[1].Changes[0].HLC {
		t.Fatalf("after reopening, the batch was not re-sent as it was: %+v", p)
	}
	var stamps int
	if err := db.QueryRow(`SELECT count(*) FROM _synchub_batch_stamps`).Scan(&stamps); err != nil || stamps != 0 {
		t.Fatalf("after the answer %d batch stamp records remain (%v), want 0", stamps, err)
	}
}

// TestPush_OpenBatchOfOlderVersionKeepsItsStamps: an open batch formed by an older
// version, which kept the HLC stamps on the outbox entries (hlc) and recorded none in
// _synchub_batch_stamps, is re-sent with the same stamps.
func TestPush_OpenBatchOfOlderVersionKeepsItsStamps(t *testing.T) {
	h, a, db := syncedItems(t)
	appExec(t, db, `UPDATE items SET name = 'one b' WHERE id = 1`)
	appExec(t, db, `UPDATE items SET price = '1.99' WHERE id = 1`)
	appExec(t, db, `INSERT INTO items (id, name, price) VALUES (7, 'seven', '7.00')`)
	h.onPush = dropFirstAnswer
	if _, err := a.PushNow(context.Background()); err == nil {
		t.Fatal("want an error for the lost answer")
	}
	first := h.pushed()[0]
	// What an older version left: each entry of a change carries the change's stamp.
	for _, c := range first.Changes {
		appExec(t, db, `UPDATE _synchub_outbox SET hlc = ?1 WHERE batch_id = ?2
			AND nktext = (SELECT nktext FROM _synchub_outbox WHERE seq = ?3)`, c.HLC, first.BatchID, c.ID)
	}
	appExec(t, db, `DELETE FROM _synchub_batch_stamps`)
	pushNow(t, a)
	p := h.pushed()
	if len(p) != 2 || p[1].BatchID != first.BatchID {
		t.Fatalf("pushes %+v; want the open batch re-sent", p)
	}
	if got, want := mustJSON(t, p[1].Changes), mustJSON(t, first.Changes); string(got) != string(want) {
		t.Errorf("re-sent changes differ from the first send:\n%s\n%s", got, want)
	}
}

func TestPush_KindsRoundTrip(t *testing.T) {
	h := newFakeHub(t, kindsTable())
	a, path := newAgent(t, h)
	pullOnly(t, a)
	if err := a.InitSyncAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	db := reader(t, path)
	appExec(t, db, `INSERT INTO app_kinds (id, b, f, dec, txt, raw, u, j, d, tm, ts, tz, iv, arr, en, n)
		VALUES (9223372036854775807, 1, 0.30000000000000004, '12345678901234567890.123456789000', 'héllo "q" \ ✓', x'0001ff',
		'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a":[1,2,{"b":"c\"d"}]}', '2024-02-29', '23:59:59.999999',
		'2024-02-29T12:00:00.5', '2024-02-29T11:00:00.123456Z', '1 year 2 mons', '[1,null,3]', 'shipped', NULL)`)
	appExec(t, db, `INSERT INTO app_kinds (id, b, f, dec, raw) VALUES (-9223372036854775808, 0, 'NaN', '-0.000000000000000001', x'')`)
	appExec(t, db, `INSERT INTO app_kinds (id, b, f) VALUES (0, 0, ?)`, math.Inf(1))
	pushNow(t, a)
	p := h.pushed()
	if len(p) != 1 || len(p[0].Changes) != 3 {
		t.Fatalf("pushes: %+v", p)
	}
	tbl := kindsTable()
	decode := func(c syncproto.PushChange) map[string]cdc.Value {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(c.Row, &m); err != nil {
			t.Fatalf("row %s: %v", c.Row, err)
		}
		out := map[string]cdc.Value{}
		for _, col := range tbl.Columns {
			raw, ok := m[col.Name]
			if !ok {
				t.Errorf("row %s lacks column %s", c.Row, col.Name)
				continue
			}
			v, err := cdc.ParseJSONValue(col.Kind, raw)
			if err != nil {
				t.Errorf("column %s: cdc.ParseJSONValue(%s, %s): %v", col.Name, col.Kind, raw, err)
			}
			out[col.Name] = v
		}
		return out
	}
	hi := decode(p[0].Changes[0])
	want := map[string]cdc.Value{
		"id": cdc.Int(9223372036854775807), "b": cdc.Bool(true), "f": cdc.Float(0.30000000000000004),
		"dec": cdc.Text(cdc.KindDecimal, "12345678901234567890.123456789000"), "txt": cdc.Text(cdc.KindText, `héllo "q" \ ✓`),
		"raw": cdc.Bytes([]byte{0, 1, 0xff}), "u": cdc.Text(cdc.KindUUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
		"j": cdc.Text(cdc.KindJSON, `{"a":[1,2,{"b":"c\"d"}]}`), "d": cdc.Text(cdc.KindDate, "2024-02-29"),
		"tm": cdc.Text(cdc.KindTime, "23:59:59.999999"), "ts": cdc.Text(cdc.KindTimestamp, "2024-02-29T12:00:00.5"),
		"tz": cdc.Text(cdc.KindTimestampTZ, "2024-02-29T11:00:00.123456Z"), "iv": cdc.Text(cdc.KindInterval, "1 year 2 mons"),
		"arr": cdc.Text(cdc.KindArray, "[1,null,3]"), "en": cdc.Text(cdc.KindEnum, "shipped"), "n": cdc.Null(),
	}
	for k, w := range want {
		if !hi[k].Equal(w) {
			t.Errorf("column %s: got %v (%s), want %v (%s)", k, hi[k], hi[k].Kind(), w, w.Kind())
		}
	}
	lo := decode(p[0].Changes[1])
	if lo["id"].AsInt() != -9223372036854775808 || lo["b"].AsBool() || lo["b"].Kind() != cdc.KindBool ||
		!lo["f"].Equal(cdc.Float(math.NaN())) || lo["dec"].AsString() != "-0.000000000000000001" ||
		lo["raw"].Kind() != cdc.KindBytes || len(lo["raw"].AsBytes()) != 0 || !lo["txt"].IsNull() {
		t.Errorf("second row: %v", lo)
	}
	inf := decode(p[0].Changes[2])
	if !inf["f"].Equal(cdc.Float(math.Inf(1))) {
		t.Errorf("infinity: %v", inf["f"])
	}
	if string(p[0].Changes[0].Key) != `{"id":9223372036854775807}` {
		t.Errorf("key %s", p[0].Changes[0].Key)
	}
}

func TestPush_BadValueRejectedLocally(t *testing.T) {
	var events []ConflictEvent
	h := newFakeHub(t, kindsTable())
	a, path := newAgent(t, h, func(c *Config) { c.OnConflict = func(e ConflictEvent) { events = append(events, e) } })
	pullOnly(t, a)
	if err := a.InitSync(context.Background(), "app.kinds"); err != nil {
		t.Fatal(err)
	}
	db := reader(t, path)
	appExec(t, db, `INSERT INTO app_kinds (id, b) VALUES (1, 'maybe')`)
	appExec(t, db, `INSERT INTO app_kinds (id, b) VALUES (2, 1)`)
	rep := pushNow(t, a)
	if rep.Rejected != 1 || rep.Sent != 1 {
		t.Errorf("report %+v", rep)
	}
	rej := rejectedRows(t, db)
	if len(rej) != 1 || !strings.Contains(rej[0], "bad_value") || !strings.Contains(rej[0], "column b") {
		t.Errorf("rejected: %v", rej)
	}
	if len(events) != 1 || events[0].Code != "bad_value" {
		t.Errorf("events %+v", events)
	}
}

func TestRun_PushesLocalWrites(t *testing.T) {
	h, a, db := syncedItems(t, func(c *Config) { c.PushInterval = 10 * time.Millisecond })
	var sawErr atomicFlag
	h.onPush = func(n int, req *syncproto.PushRequest) (int, any) {
		if n <= 2 {
			return http.StatusServiceUnavailable, syncproto.Error{Code: "unavailable", Message: "hub is starting"}
		}
		return 0, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	appExec(t, db, `UPDATE items SET name = 'from run' WHERE id = 1`)
	waitFor(t, 10*time.Second, "the push", func() bool {
		st := a.Status()
		if strings.Contains(st.LastPushError, "hub is starting") {
			sawErr.set()
		}
		return len(h.pushed()) == 3 && st.Pending == 0
	})
	if st := a.Status(); !sawErr.get() || st.LastPushError != "" || st.LastPush.IsZero() || st.Pushed != 1 {
		t.Errorf("status: saw the error %v, now %+v", sawErr.get(), st)
	}
	p := h.pushed()
	if p[0].BatchID != p[2].BatchID {
		t.Errorf("retries used another batch id")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}

type atomicFlag struct {
	mu sync.Mutex
	v  bool
}

func (f *atomicFlag) set() { f.mu.Lock(); f.v = true; f.mu.Unlock() }

func (f *atomicFlag) get() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.v
}

func TestPush_KeyChangeAndTableGoneUnderBatch(t *testing.T) {
	var events []ConflictEvent
	h, a, db := syncedItems(t, func(c *Config) { c.OnConflict = func(e ConflictEvent) { events = append(events, e) } })
	appExec(t, db, `UPDATE items SET id = 50 WHERE id = 1`)
	appExec(t, db, `UPDATE items SET name = 'fifty' WHERE id = 50`)
	h.onPush = func(n int, req *syncproto.PushRequest) (int, any) {
		if n == 1 {
			return 0, nil
		}
		return dropConn, nil
	}
	pushNow(t, a)
	p := h.pushed()
	if len(p) != 1 || len(p[0].Changes) != 1 {
		t.Fatalf("pushes %+v", p)
	}
	c := p[0].Changes[0]
	if c.Op != "u" || string(c.Key) != `{"id":1}` || c.BaseVersion != 1 {
		t.Errorf("key change sent as %s key %s base %d; want u of key id 1 based on version 1", c.Op, c.Key, c.BaseVersion)
	}
	jsonEq(t, "row", c.Row, `{"id":50,"name":"fifty","price":"1.50"}`)

	// A batch in flight whose table the hub stops capturing is not stuck: its change
	// goes to _synchub_rejected.
	appExec(t, db, `UPDATE items SET name = 'gone' WHERE id = 2`)
	if _, err := a.PushNow(context.Background()); err == nil {
		t.Fatal("want the lost answer's error")
	}
	other := cdc.Table{Name: "public.other", Columns: []cdc.Column{{Name: "id", SourceType: "bigint", Kind: cdc.KindInt, SQLiteType: "INTEGER"}}, PrimaryKey: []string{"id"}}
	h.setTables(other)
	h.commit(0, cdc.Change{Table: "public.other", Op: cdc.OpInsert, After: cdc.Row{{Name: "id", Value: cdc.Int(1)}}})
	pullOnly(t, a)
	rep := pushNow(t, a)
	if rep.Rejected != 1 || len(readOutboxRows(t, db)) != 0 {
		t.Errorf("report %+v outbox %+v", rep, readOutboxRows(t, db))
	}
	if rej := rejectedRows(t, db); len(rej) != 1 || !strings.Contains(rej[0], "unknown_table") {
		t.Errorf("rejected %v", rej)
	}
	if len(events) != 1 || events[0].BatchID == "" {
		t.Errorf("events %+v", events)
	}
	// Nothing of the batch is left: its stamps went with its last change.
	var stamps int
	if err := db.QueryRow(`SELECT count(*) FROM _synchub_batch_stamps`).Scan(&stamps); err != nil || stamps != 0 {
		t.Errorf("after every change of the open batch was rejected, %d batch stamp records remain (%v), want 0", stamps, err)
	}
}

func TestClose_StopsPushInFlight(t *testing.T) {
	h, a, db := syncedItems(t, func(c *Config) { c.PushInterval = 5 * time.Millisecond })
	started, release := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(release) }) // runs before the fake hub's server closes
	var once sync.Once
	h.onPush = func(n int, req *syncproto.PushRequest) (int, any) {
		once.Do(func() { close(started) })
		<-release // never answers while the agent runs; the client gives up on Close
		return 0, nil
	}
	appExec(t, db, `UPDATE items SET name = 'in flight' WHERE id = 1`)
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the push did not start")
	}
	closed := make(chan error, 1)
	go func() { closed <- a.Close() }()
	select {
	case err := <-done:
		if err != ErrClosed {
			t.Errorf("Run returned %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	// The entry is still in the outbox, in its batch, for the next run.
	if rows := readOutboxRows(t, db); len(rows) != 1 || !rows[0].batch.Valid {
		t.Errorf("outbox after Close: %+v", rows)
	}
}

func TestPush_ClockSkewShiftsStampsAndSentAt(t *testing.T) {
	h, a, db := syncedItems(t, func(c *Config) { c.ClockSkew = 10 * time.Minute })
	appExec(t, db, `UPDATE items SET name = 'fast' WHERE id = 1`)
	pushNow(t, a)
	req := h.pushed()[0]
	ahead := time.Now().Add(9 * time.Minute).UnixMicro()
	if req.SentAt < ahead || mustHLC(t, req.Changes[0].HLC).Wall < ahead {
		t.Errorf("sent_at %d and hlc %s are not 10 minutes ahead (want > %d)", req.SentAt, req.Changes[0].HLC, ahead)
	}
}

func TestMetrics_PullAndPush(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.NewEdge(reg)
	if err != nil {
		t.Fatal(err)
	}
	h, a, db := syncedItems(t, func(c *Config) { c.Metrics = m })
	appExec(t, db, `UPDATE items SET name = 'x' WHERE id = 1`)
	appExec(t, db, `UPDATE items SET name = 'y' WHERE id = 2`)
	h.onPush = func(n int, req *syncproto.PushRequest) (int, any) {
		if n == 1 {
			return http.StatusServiceUnavailable, syncproto.Error{Code: "unavailable", Message: "down"}
		}
		resp := appliedAnswer(req)
		resp.Results[1].Status, resp.Results[1].Reason = syncproto.PushRejected, "no"
		return http.StatusOK, resp
	}
	if _, err := a.PushNow(context.Background()); err == nil {
		t.Fatal("want the 503")
	}
	if got := testutil.ToFloat64(m.OutboxPending); got != 2 {
		t.Errorf("outbox_pending_changes = %v, want 2", got)
	}
	pushNow(t, a)
	h.commit(0, ins(30, "thirty"))
	pullOnly(t, a)
	checks := map[string]float64{
		"push errors":     testutil.ToFloat64(m.PushErrors),
		"pushed applied":  testutil.ToFloat64(m.PushChanges.WithLabelValues("applied")),
		"pushed rejected": testutil.ToFloat64(m.PushChanges.WithLabelValues("rejected")),
		"outbox pending":  testutil.ToFloat64(m.OutboxPending),
		"pulls ok":        testutil.ToFloat64(m.Pulls.WithLabelValues("ok")),
		"watermark":       testutil.ToFloat64(m.Watermark),
	}
	want := map[string]float64{"push errors": 1, "pushed applied": 1, "pushed rejected": 1, "outbox pending": 0, "pulls ok": 3, "watermark": float64(h.head())}
	for k, w := range want {
		if checks[k] != w {
			t.Errorf("%s = %v, want %v", k, checks[k], w)
		}
	}
}

// TestPush_WithoutCatalogueRejectsNothing: while the catalogue of synced tables is
// dropped (Close, or a pull replacing its connection), a push fails and leaves the
// outbox as it is, rather than rejecting every change as one of an unsynced table.
func TestPush_WithoutCatalogueRejectsNothing(t *testing.T) {
	h, a, db := syncedItems(t)
	appExec(t, db, `UPDATE items SET name = 'kept' WHERE id = 1`)
	a.pullMu.Lock()
	a.setCatalogue(nil, nil)
	a.pullMu.Unlock()
	if _, err := a.PushNow(context.Background()); err == nil || !strings.Contains(err.Error(), "local schema is being reloaded") {
		t.Errorf("PushNow without a catalogue: %v; want the schema-reload error", err)
	}
	if rows, rej := readOutboxRows(t, db), rejectedRows(t, db); len(rows) != 1 || len(rej) != 0 || len(h.pushed()) != 0 {
		t.Errorf("outbox %+v, rejected %v, %d pushes; want the change kept and nothing sent", rows, rej, len(h.pushed()))
	}
}
