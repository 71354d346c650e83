package edges

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func TestRegistry_SeenRecordsPullsAndPushes(t *testing.T) {
	r, err := Open(context.Background(), DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return clock }
	r.Seen("till-1", Pull, 0, `{"store_id":"7"}`)
	clock = clock.Add(time.Minute)
	r.Seen("till-1", Pull, 40, "")
	r.Seen("till-1", Push, 999, "")
	r.Seen("", Pull, 3, "")
	r.Seen("tab-9", Push, 0, "")

	list := r.List()
	if len(list) != 2 || list[0].ID != "tab-9" || list[1].ID != "till-1" {
		t.Fatalf("List = %+v, want tab-9 and till-1 in order", list)
	}
	e, ok := r.Get("till-1")
	if !ok {
		t.Fatal("till-1 not found")
	}
	if e.Watermark != 40 || e.Pulls != 2 || e.Pushes != 1 || e.Scope != `{"store_id":"7"}` {
		t.Fatalf("till-1 = %+v", e)
	}
	if !e.FirstSeen.Equal(clock.Add(-time.Minute)) || !e.LastSeen.Equal(clock) || !e.LastPush.Equal(clock) {
		t.Fatalf("till-1 times = %+v", e)
	}
	if got := e.Behind(100); got != 60 {
		t.Fatalf("Behind(100) = %d, want 60", got)
	}
	tab, _ := r.Get("tab-9")
	if tab.Watermark != -1 || tab.Behind(100) != 0 {
		t.Fatalf("an edge that never pulled has watermark %d, behind %d; want -1 and 0", tab.Watermark, tab.Behind(100))
	}
	if !e.Online(clock.Add(30*time.Second), time.Minute) || e.Online(clock.Add(2*time.Minute), time.Minute) {
		t.Fatal("Online does not follow the window")
	}
}

func TestRegistry_MaxEdges(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxEdges = 2
	r, err := Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c", "a"} {
		r.Seen(id, Pull, 1, "")
	}
	if n := len(r.List()); n != 2 || r.Dropped() != 1 {
		t.Fatalf("%d edges, %d dropped; want 2 and 1", n, r.Dropped())
	}
}

func TestRegistry_PersistsAcrossReopen(t *testing.T) {
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "edges.db")
	cfg.FlushInterval = 10 * time.Millisecond
	r, err := Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Seen("till-1", Pull, 12, "store 7")
	r.Seen("till-1", Push, 0, "")
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	r.Seen("till-2", Pull, 3, "")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	r2, err := Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	e, ok := r2.Get("till-1")
	if !ok || e.Watermark != 12 || e.Pushes != 1 || e.Pulls != 1 || e.Scope != "store 7" || e.LastPush.IsZero() {
		t.Fatalf("reopened till-1 = %+v, %v", e, ok)
	}
	if _, ok := r2.Get("till-2"); !ok {
		t.Fatal("till-2, seen just before shutdown, was not persisted")
	}
}

func TestConfig_Validate(t *testing.T) {
	for _, c := range []Config{{FlushInterval: 0, MaxEdges: 1}, {FlushInterval: time.Second}} {
		if c.Validate() == nil {
			t.Fatalf("%+v validated", c)
		}
	}
}
