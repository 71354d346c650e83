package changelog

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

// killVersion returns the deterministic content of version v in the kill test:
// five inserts and an update of a row of the previous version.
func killVersion(v int64) []cdc.Change {
	cs := make([]cdc.Change, 0, 6)
	for j := int64(0); j < 5; j++ {
		cs = append(cs, ins(v*10+j, "v"+strconv.FormatInt(v, 10)))
	}
	if v > 1 {
		cs = append(cs, upd((v-1)*10, "updated by "+strconv.FormatInt(v, 10)))
	}
	return cs
}

// TestSQLiteStore_KillWriterProcess is the child process of TestSQLiteStore_Kill9.
func TestSQLiteStore_KillWriterProcess(t *testing.T) {
	path := os.Getenv("SYNCHUB_CHANGELOG_KILL_PATH")
	if path == "" {
		t.Skip("runs only as the child of TestSQLiteStore_Kill9")
	}
	cfg := DefaultSQLiteConfig()
	cfg.Path = path
	cfg.ChunkChanges = 4
	s, err := OpenSQLite(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	out := bufio.NewWriter(os.Stdout)
	st, err := s.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := st.Head + 1
	b, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetTables(testTables()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100000; i++ {
		changes := killVersion(next)
		if next%7 == 0 {
			// A transaction in parts, committed between parts.
			for k, c := range changes {
				if err := b.AppendTx(ctx, &cdc.Tx{Changes: []cdc.Change{c}, More: k < len(changes)-1, Pos: testPos(next), CommitTime: time.Now()}); err != nil {
					t.Fatal(err)
				}
				if _, err := b.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				if b, err = s.Begin(ctx); err != nil {
					t.Fatal(err)
				}
			}
		} else if err := b.AppendTx(ctx, &cdc.Tx{Pos: testPos(next), CommitTime: time.Now(), Changes: changes}); err != nil {
			t.Fatal(err)
		}
		next++
		if next%3 == 0 {
			st, err := b.Commit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(out, "committed %d\n", st.Head)
			out.Flush()
			if b, err = s.Begin(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestSQLiteStore_Kill9 kills a writing process at arbitrary moments and checks that
// every commit it reported survives, that versions are gap-free and whole, and that
// the row index agrees with the log.
func TestSQLiteStore_Kill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	path := filepath.Join(t.TempDir(), "changelog.db")
	var reported int64
	for round := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSQLiteStore_KillWriterProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "SYNCHUB_CHANGELOG_KILL_PATH="+path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		commits := 0
		for sc.Scan() && commits < 20+round*15 {
			if h, ok := strings.CutPrefix(sc.Text(), "committed "); ok {
				n, err := strconv.ParseInt(h, 10, 64)
				if err != nil {
					t.Fatalf("child said %q", sc.Text())
				}
				reported = n
				commits++
			}
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if commits == 0 {
			t.Fatalf("round %d: the writer reported no commit", round)
		}
		head := checkKilledLog(t, path, reported)
		t.Logf("round %d: killed after %d reported commits; reported head %d, recovered head %d", round, commits, reported, head)
	}
}

func checkKilledLog(t *testing.T, path string, reported int64) int64 {
	t.Helper()
	cfg := DefaultSQLiteConfig()
	cfg.Path = path
	s, err := OpenSQLite(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := mustState(t, s)
	if st.Head < reported {
		t.Fatalf("head %d after kill, but %d was reported committed", st.Head, reported)
	}
	if st.Position != testPos(st.Head).String() {
		t.Fatalf("position %q does not belong to head %d", st.Position, st.Head)
	}
	got := pullAll(t, s, 0, 1000)
	if got.next != st.Head {
		t.Fatalf("pulled to %d, head %d", got.next, st.Head)
	}
	var want []string
	for v := int64(1); v <= st.Head; v++ {
		for _, c := range killVersion(v) {
			want = append(want, c.Op.Code()+string(syncproto.AppendRow(nil, c.After)))
		}
	}
	var have []string
	for _, c := range got.changes {
		have = append(have, c.Op+string(c.Row))
	}
	if strings.Join(have, "\n") != strings.Join(want, "\n") {
		t.Fatalf("log after kill differs from versions 1..%d (%d changes, want %d)", st.Head, len(have), len(want))
	}
	if st.Entries != int64(len(want)) {
		t.Fatalf("entries %d, want %d", st.Entries, len(want))
	}
	ctx := context.Background()
	for v := int64(1); v <= st.Head; v++ {
		last := v
		if v < st.Head {
			last = v + 1 // row v*10 is updated by the next version
		}
		info, ok, err := s.Row(ctx, itemsTable.Name, keyText(v*10))
		if err != nil || !ok || info.Version != last {
			t.Fatalf("row %d: %+v %v %v, want version %d", v*10, info, ok, err, last)
		}
	}
	if _, ok, _ := s.Row(ctx, itemsTable.Name, keyText((st.Head+1)*10)); ok {
		t.Fatalf("a row of the unfinished version %d is in the index", st.Head+1)
	}
	return st.Head
}
