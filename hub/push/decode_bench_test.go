package push

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

// ledgerTable is a small, typical synchronised table for the decoder benchmark.
var ledgerTable = cdc.Table{
	Name: "public.ledger",
	Columns: []cdc.Column{
		{Name: "id", SourceType: "bigint", Kind: cdc.KindInt, SQLiteType: "INTEGER"},
		{Name: "account", SourceType: "bigint", Kind: cdc.KindInt, SQLiteType: "INTEGER"},
		{Name: "amount", SourceType: "numeric(12,2)", Kind: cdc.KindDecimal, SQLiteType: "TEXT", Nullable: true},
		{Name: "body", SourceType: "text", Kind: cdc.KindText, SQLiteType: "TEXT", Nullable: true},
	},
	PrimaryKey: []string{"id"},
}

// ledgerChanges returns n updates of ledgerTable as an edge pushes them: key, full
// new row, base image and HLC.
func ledgerChanges(n int) []syncproto.PushChange {
	out := make([]syncproto.PushChange, n)
	for i := range out {
		id := int64(1_000_000 + i)
		hlc := syncproto.HLC{Wall: 1_700_000_000_000_000 + int64(i), Logical: uint16(i % 7), Node: "till-1"}
		out[i] = syncproto.PushChange{
			ID:          int64(i + 1),
			Table:       ledgerTable.Name,
			Op:          "u",
			Key:         json.RawMessage(fmt.Sprintf(`{"id":%d}`, id)),
			Row:         json.RawMessage(fmt.Sprintf(`{"id":%d,"account":%d,"amount":"%d.%02d","body":"payment for invoice %d, thank you"}`, id, 4000+i%50, 10+i, i%100, i)),
			BaseVersion: int64(500 + i),
			Base:        json.RawMessage(fmt.Sprintf(`{"id":%d,"account":%d,"amount":"%d.00","body":"invoice %d"}`, id, 4000+i%50, 10+i, i)),
			HLC:         hlc.String(),
		}
	}
	return out
}

// BenchmarkDecodeChange decodes a push batch of 1,000 changes per operation.
func BenchmarkDecodeChange(b *testing.B) {
	sch := &cdc.Schema{Version: 1, Tables: []cdc.Table{ledgerTable}}
	changes := ledgerChanges(1000)
	b.ReportAllocs()
	for b.Loop() {
		for i := range changes {
			if _, err := decodeChange(sch, &changes[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
}
