package push

import (
	"encoding/json"
	"testing"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

// FuzzDecodeChange feeds arbitrary keys, rows and base images to the change decoder: it
// must never panic, an accepted change must have every key column set, and each object
// must decode as the map-based reference decodes it.
func FuzzDecodeChange(f *testing.F) {
	f.Add("i", `{"id":1}`, `{"id":1,"note":"a","total":"1.00","qty":2}`, `null`, "0001700000000000000-00000-till-1")
	f.Add("u", `{"id":1}`, `{"id":2,"note":null}`, `{"id":1,"note":"b","gone":true}`, "")
	f.Add("d", `{"id":"x"}`, ``, ``, "bad")
	f.Add("u", `[]`, `{"qty":1e99}`, `7`, "0001700000000000000-00000-")
	sch := &cdc.Schema{Version: 1, Tables: []cdc.Table{ordersTable}}
	f.Fuzz(func(t *testing.T, op, key, row, base, hlc string) {
		for _, raw := range []string{key, row, base} {
			checkDecodersAgree(t, &ordersTable, []byte(raw))
		}
		pc := syncproto.PushChange{ID: 1, Table: ordersTable.Name, Op: op, Key: json.RawMessage(key), Row: json.RawMessage(row), Base: json.RawMessage(base), HLC: hlc}
		c, err := decodeChange(sch, &pc)
		if err != nil {
			return
		}
		for _, k := range ordersTable.PrimaryKey {
			if v, ok := c.key.Get(k); !ok || v.IsNull() {
				t.Fatalf("accepted change without key column %s: %+v", k, c)
			}
		}
		if c.op != cdc.OpDelete && c.row == nil {
			t.Fatalf("accepted %s without a row", c.op)
		}
	})
}

// FuzzDecodeObject checks that the one-pass object decoders give the same row or the
// same error as the map-based references, as a key, a row and a base image.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkDecodersAgree(t, &ordersTable, raw)
		checkDecodersAgree(t, &kindsTable, raw)
	})
}
