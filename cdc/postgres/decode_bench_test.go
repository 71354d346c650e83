package postgres

import (
	"encoding/binary"
	"testing"

	"github.com/synchub/synchub/cdc"
)

// benchRowDef and benchTuple are a typical row: id, name, qty, price, created, flag, tags.
func benchRowDef(tb testing.TB) (*tableDef, [][]byte) {
	types := []string{"int8", "text", "int4", "numeric", "timestamptz", "bool", "_text"}
	names := []string{"id", "name", "qty", "price", "created", "flag", "tags"}
	def := &tableDef{table: cdc.Table{Name: "public.bench"}}
	for i, n := range types {
		def.table.Columns = append(def.table.Columns, cdc.Column{Name: names[i]})
		def.cols = append(def.cols, colDef{typ: typeByName(tb, n)})
	}
	vals := [][]byte{
		[]byte("123456"), []byte("customer name 123456"), []byte("456"), []byte("234.56"),
		[]byte("2024-01-02 10:17:36+00"), []byte("t"), []byte("{a,b123456}"),
	}
	return def, vals
}

func encodeTuple(vals [][]byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(vals)))
	for _, v := range vals {
		b = append(b, 't')
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	return b
}

// BenchmarkDecodeTuple is the per-row cost of turning a pgoutput tuple into a Row.
func BenchmarkDecodeTuple(b *testing.B) {
	def, vals := benchRowDef(b)
	tuple := encodeTuple(vals)
	b.ReportAllocs()
	var d rowDecoder
	for b.Loop() {
		if _, err := d.tuple(def, tuple); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeValues is the per-row cost of decoding a snapshot row's text values.
func BenchmarkDecodeValues(b *testing.B) {
	def, vals := benchRowDef(b)
	b.ReportAllocs()
	var d rowDecoder
	for b.Loop() {
		if _, err := d.values(def, vals); err != nil {
			b.Fatal(err)
		}
	}
}
