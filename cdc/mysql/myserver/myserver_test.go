package myserver_test

import (
	"context"
	"database/sql"
	"reflect"
	"testing"

	"github.com/synchub/synchub/cdc/mysql/myserver"
	"github.com/synchub/synchub/cdc/mysql/mytest"
)

func TestSplitStatements(t *testing.T) {
	got := myserver.SplitStatements("CREATE TABLE a (x int);\nINSERT INTO a VALUES (1); INSERT INTO b VALUES ('x;y', \"z;\\\";\")\n;;")
	want := []string{"CREATE TABLE a (x int)", "INSERT INTO a VALUES (1)", "INSERT INTO b VALUES ('x;y', \"z;\\\";\")"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("SplitStatements = %q, want %q", got, want)
	}
}

func TestServerHasCDCSettingsAndRestarts(t *testing.T) {
	s := mytest.Start(t, myserver.Options{})
	ctx := context.Background()
	db, err := sql.Open("mysql", s.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name, want := range map[string]string{"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL", "binlog_row_metadata": "FULL", "server_id": "1"} {
		var n, v string
		if err := db.QueryRowContext(ctx, "SHOW GLOBAL VARIABLES LIKE '"+name+"'").Scan(&n, &v); err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		if v != want {
			t.Errorf("%s = %q, want %q", name, v, want)
		}
	}
	dbName := mytest.CreateDB(t, s)
	mytest.MustExec(t, s, dbName, "CREATE TABLE k (id INT PRIMARY KEY, v VARCHAR(10));\nINSERT INTO k VALUES (1, 'a;b')")
	if err := s.Restart(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	db2, err := sql.Open("mysql", s.DSN(dbName))
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	var v string
	if err := db2.QueryRowContext(ctx, "SELECT v FROM k WHERE id = 1").Scan(&v); err != nil || v != "a;b" {
		t.Fatalf("after restart: v = %q, %v; want a;b", v, err)
	}
}
