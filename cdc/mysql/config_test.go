package mysql

import (
	"strings"
	"testing"
	"time"
)

func TestParseDSN(t *testing.T) {
	for _, c := range []struct {
		dsn  string
		want connParams
	}{
		{"mysql://root@127.0.0.1:3307/shop", connParams{User: "root", Addr: "127.0.0.1:3307", Database: "shop"}},
		{"mysql://sync:p%40ss%3Aw@db.example.com/shop", connParams{User: "sync", Password: "p@ss:w", Addr: "db.example.com:3306", Database: "shop"}},
		{"mariadb://u:pw@[::1]:3306/", connParams{User: "u", Password: "pw", Addr: "[::1]:3306"}},
		{"root@127.0.0.1:3307/shop", connParams{User: "root", Addr: "127.0.0.1:3307", Database: "shop"}},
		{"u:p@tcp(db:3306)/x", connParams{User: "u", Password: "p", Addr: "db:3306", Database: "x"}},
	} {
		got, err := parseDSN(c.dsn)
		if err != nil || got != c.want {
			t.Errorf("parseDSN(%q) = %+v, %v; want %+v", c.dsn, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "127.0.0.1:3306", "mysql://127.0.0.1/x", "mysql://u@/x", "mysql://u@h/x?tls=true", "u@h/x?parseTime=true"} {
		if p, err := parseDSN(bad); err == nil {
			t.Errorf("parseDSN(%q) = %+v, want an error", bad, p)
		}
	}
}

func TestConfig_Validate(t *testing.T) {
	ok := DefaultConfig()
	ok.DSN = "mysql://u@h:3306/shop"
	ok.Tables = []string{"shop.orders", "shop.items"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	bad := Config{DSN: "nonsense", Tables: []string{"orders", "shop.items", "shop.items"}, HeartbeatPeriod: 5 * time.Second, ReadTimeout: time.Second}
	err := bad.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"DSN is invalid", "not database-qualified", "listed twice", "SnapshotPageRows must be positive", "MaxTxChanges", "ReadTimeout (1s) must exceed HeartbeatPeriod", "DefaultConfig()"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %q:\n%v", want, err)
		}
	}
	if _, err := New(bad, nil); err == nil {
		t.Error("New accepted an invalid config")
	}
}

func TestConfig_ServerID(t *testing.T) {
	c := DefaultConfig()
	c.DSN = "mysql://u@h:3306/shop"
	c.Tables = []string{"shop.orders"}
	a := c.serverID()
	if a&0xff000000 != 0x5e000000 || a != c.serverID() {
		t.Fatalf("derived server id %#x is not stable in 0x5e000000–0x5effffff", a)
	}
	c.Tables = []string{"shop.items"}
	if c.serverID() == a {
		t.Errorf("different tables derived the same server id %#x", a)
	}
	c.ServerID = 77
	if c.serverID() != 77 {
		t.Errorf("configured server id ignored")
	}
	if c.originDatabase() != "shop" {
		t.Errorf("origin database = %q, want the first table's", c.originDatabase())
	}
}
