package mysql

import (
	"strings"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/google/uuid"
)

func TestParsePosition_RoundTrip(t *testing.T) {
	for _, text := range []string{
		"",
		"mariadb:binlog.000003:1234",
		"mariadb:binlog.000003:1234@0-1-42",
		"mariadb:binlog.000003:4@0-1-42,1-2-7",
		"mariadb:mysql-bin.000001:4294967295@0-4294967295-18446744073709551615",
		"mysql:binlog.000012:157",
		"mysql:binlog.000012:157@3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5",
		"mysql:binlog.000012:157@3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7:9-12,4f22ab58-71ca-11e1-9e33-c80aa9429562:1",
		"mysql:binlog.000012:157@3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:fleet:1-3",
	} {
		p, err := ParsePosition(text)
		if err != nil {
			t.Fatalf("ParsePosition(%q): %v", text, err)
		}
		if got := p.String(); got != text {
			t.Errorf("ParsePosition(%q).String() = %q", text, got)
		}
		if p.IsZero() != (text == "") {
			t.Errorf("ParsePosition(%q).IsZero() = %v", text, p.IsZero())
		}
	}
}

func TestParsePosition_Fields(t *testing.T) {
	p, err := ParsePosition("mysql:binlog.000012:157@3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5")
	if err != nil {
		t.Fatal(err)
	}
	want := Position{Flavour: FlavourMySQL, File: "binlog.000012", Offset: 157, GTID: "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"}
	if p != want {
		t.Fatalf("got %+v, want %+v", p, want)
	}
}

func TestParsePosition_Invalid(t *testing.T) {
	for _, text := range []string{
		"binlog.000001:4",
		"postgres:binlog.000001:4",
		"mariadb::4",
		"mariadb:binlog.000001:",
		"mariadb:binlog.000001:-1",
		"mariadb:binlog.000001:4294967296",
		"mariadb:binlog.000001:4@",
		"mariadb:binlog.000001:4@0-1",
		"mariadb:binlog.000001:4@0-1-x",
		"mariadb:binlog.000001:4@0-1-2,0-1-3",
		"mariadb:binlog.000001:4@1-2-7,0-1-42", // not canonical (sorted)
		"mariadb:../etc/passwd:4",
		"mysql:binlog.000001:4@3e11fa47-71ca-11e1-9e33-c80aa9429562",
		"mysql:binlog.000001:4@3e11fa47-71ca-11e1-9e33-c80aa9429562:0-3",
		"mysql:binlog.000001:4@3e11fa47-71ca-11e1-9e33-c80aa9429562:5-3",
		"mysql:binlog.000001:4@not-a-uuid-at-all-but-36-characters!:1",
		"mysql:binlog.000001:4@3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5", // not canonical (case)
		"mysql:binlog.000001:4@0-1-2",
	} {
		if p, err := ParsePosition(text); err == nil {
			t.Errorf("ParsePosition(%q) = %+v, want an error", text, p)
		}
	}
}

func TestPosition_Compare(t *testing.T) {
	ps := []string{
		"mariadb:binlog.000009:900",
		"mariadb:binlog.000010:4",
		"mariadb:binlog.000010:120",
		"mariadb:binlog.000100:4",
	}
	for i := range ps {
		for j := range ps {
			a, _ := ParsePosition(ps[i])
			b, _ := ParsePosition(ps[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := a.Compare(b); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", ps[i], ps[j], got, want)
			}
		}
	}
}

func TestGTIDTracker_MariaDB(t *testing.T) {
	tr, err := newGTIDTracker(FlavourMariaDB, "0-1-42")
	if err != nil {
		t.Fatal(err)
	}
	tr.beginMariaDB(gomysql.MariadbGTID{DomainID: 0, ServerID: 1, SequenceNumber: 43})
	if tr.String() != "0-1-42" {
		t.Fatalf("GTID set moved before commit: %s", tr)
	}
	if err := tr.commit(); err != nil {
		t.Fatal(err)
	}
	tr.beginMariaDB(gomysql.MariadbGTID{DomainID: 1, ServerID: 2, SequenceNumber: 7})
	tr.commit()
	tr.beginMariaDB(gomysql.MariadbGTID{DomainID: 0, ServerID: 3, SequenceNumber: 44})
	tr.commit()
	if got := tr.String(); got != "0-3-44,1-2-7" {
		t.Fatalf("MariaDB GTID set = %s, want 0-3-44,1-2-7", got)
	}
}

func TestGTIDTracker_MySQL(t *testing.T) {
	u := uuid.MustParse("3e11fa47-71ca-11e1-9e33-c80aa9429562")
	tr, err := newGTIDTracker(FlavourMySQL, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5")
	if err != nil {
		t.Fatal(err)
	}
	for _, gno := range []int64{6, 7, 9} {
		if err := tr.beginMySQL(u[:], gomysql.Tag{}, gno); err != nil {
			t.Fatal(err)
		}
		tr.commit()
	}
	// An anonymous transaction (GTIDs off) adds nothing.
	tr.beginMySQL(make([]byte, 16), gomysql.Tag{}, 0)
	tr.commit()
	if got := tr.String(); got != "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-7:9" {
		t.Fatalf("MySQL GTID set = %s", got)
	}
	if err := tr.beginMySQL([]byte{1, 2}, gomysql.Tag{}, 3); err == nil {
		t.Fatal("a short server uuid was accepted")
	}
}

func TestSyncRequest(t *testing.T) {
	p, _ := ParsePosition("mysql:binlog.000012:157@3e11fa47-71ca-11e1-9e33-c80aa9429562:1-7:9")
	set, _, err := syncRequest(p)
	if err != nil || set == nil {
		t.Fatalf("syncRequest(%s) = %v, %v; want a GTID set", p, set, err)
	}
	if _, ok := set.(*gomysql.MysqlGTIDSet); !ok || set.String() != p.GTID {
		t.Fatalf("MySQL resume set = %T %s", set, set)
	}
	// The set encodes for COM_BINLOG_DUMP_GTID.
	if len(set.Encode()) == 0 {
		t.Fatal("empty encoded GTID set")
	}

	p, _ = ParsePosition("mariadb:binlog.000003:1234@0-1-42,1-2-7")
	set, _, err = syncRequest(p)
	if _, ok := set.(*gomysql.MariadbGTIDSet); err != nil || !ok || set.String() != "0-1-42,1-2-7" {
		t.Fatalf("MariaDB resume set = %T %v, %v", set, set, err)
	}

	p, _ = ParsePosition("mysql:binlog.000012:157")
	set, fp, err := syncRequest(p)
	if err != nil || set != nil || fp.Name != "binlog.000012" || fp.Pos != 157 {
		t.Fatalf("file resume = %v %v %v", set, fp, err)
	}
	if _, _, err := syncRequest(Position{}); err == nil {
		t.Fatal("syncRequest of the zero position succeeded")
	}
}

func TestLagBytes(t *testing.T) {
	logs := []binaryLog{{"binlog.000001", 1000}, {"binlog.000002", 500}, {"binlog.000003", 300}}
	for _, c := range []struct {
		pos  string
		want int64
	}{
		{"mariadb:binlog.000001:400", 600 + 500 + 300},
		{"mariadb:binlog.000002:500", 300},
		{"mariadb:binlog.000003:300", 0},
	} {
		p, _ := ParsePosition(c.pos)
		if got := lagBytes(logs, p); got != c.want {
			t.Errorf("lagBytes(%s) = %d, want %d", c.pos, got, c.want)
		}
	}
}

func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{
		"", "mariadb:binlog.000003:1234@0-1-42,1-2-7", "mysql:binlog.000012:157@3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7",
		"mysql:b:1@3e11fa47-71ca-11e1-9e33-c80aa9429562:tag:1-2", "mariadb:x:0", "mysql:binlog.1:99999999999",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePosition(s)
		if err != nil {
			return
		}
		again, err := ParsePosition(p.String())
		if err != nil {
			t.Fatalf("ParsePosition(%q) = %+v, whose text %q does not parse: %v", s, p, p.String(), err)
		}
		if again != p {
			t.Fatalf("round trip of %q: %+v then %+v", s, p, again)
		}
		if strings.ContainsAny(p.File, "/\\") {
			t.Fatalf("file %q with a path separator accepted", p.File)
		}
	})
}
