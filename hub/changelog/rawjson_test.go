package changelog

import (
	"encoding/json"
	"testing"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

func TestRawJSON_StoredChanges(t *testing.T) {
	key := cdc.Row{{Name: "a", Value: cdc.Text(cdc.KindText, `q"uo\te`)}, {Name: "b", Value: cdc.Int(-3)}}
	row := append(append(cdc.Row{}, key...), cdc.Field{Name: "v", Value: cdc.Text(cdc.KindText, "{[,]}")})
	moved := cdc.Row{{Name: "a", Value: cdc.Text(cdc.KindText, "old")}, {Name: "b", Value: cdc.Int(1)}}
	changes := []cdc.Change{
		{Table: pairsTable.Name, Op: cdc.OpInsert, After: row},
		{Table: pairsTable.Name, Op: cdc.OpUpdate, Before: moved, After: row},
		{Table: pairsTable.Name, Op: cdc.OpDelete, Before: key},
		{Table: pairsTable.Name, Op: cdc.OpTruncate},
	}
	data := []byte{'['}
	for i := range changes {
		if i > 0 {
			data = append(data, ',')
		}
		data = syncproto.AppendChange(data, &changes[i], &pairsTable)
	}
	data = append(data, ']')
	var elems [][]byte
	if err := eachElem(data, func(e []byte) error { elems = append(elems, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(elems) != len(changes) {
		t.Fatalf("%d elements, want %d", len(elems), len(changes))
	}
	qkeys := quotedNames(pairsTable.PrimaryKey)
	wantKey := syncproto.KeyText(&pairsTable, key)
	for i, e := range elems {
		rc, err := parseRawChange(e)
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		if string(rc.table) != `"app.pairs"` || rc.op != changes[i].Op.Code()[0] {
			t.Errorf("change %d: table %s op %c", i, rc.table, rc.op)
		}
		if rc.row != nil {
			if k := string(appendKeyFromRow(nil, rc.row, qkeys)); k != wantKey {
				t.Errorf("change %d: key from row %s, want %s", i, k, wantKey)
			}
			if !json.Valid(rc.row) {
				t.Errorf("change %d: row span %s", i, rc.row)
			}
		}
		switch changes[i].Op {
		case cdc.OpUpdate:
			if k := string(appendKeyFromKey(nil, rc.key)); k != syncproto.KeyText(&pairsTable, moved) {
				t.Errorf("old key %s", k)
			}
		case cdc.OpDelete:
			if k := string(appendKeyFromKey(nil, rc.key)); k != wantKey {
				t.Errorf("delete key %s, want %s", k, wantKey)
			}
		}
	}
	for _, bad := range []string{``, `[`, `[{"t":"x","op":"i"`, `[1,]`, `{}`, `[{"t":"x"}]`, `[{"op":"i"}]`, `[{"t":"x","op":"z"}]`} {
		err := eachElem([]byte(bad), func(e []byte) error {
			_, err := parseRawChange(e)
			return err
		})
		if err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzRawChunk(f *testing.F) {
	f.Add([]byte(`[{"t":"app.pairs","op":"u","row":{"a":"x","b":1,"v":null},"key":{"a":"y","b":2}}]`))
	f.Add([]byte(`[{"t":"public.items","op":"d","key":{"id":1}},{"t":"public.items","op":"t"}]`))
	f.Add([]byte(`[{"t":"a\"b","op":"i","row":{"\u0000":"\\"}}]`))
	f.Add([]byte(`[ { "t" : "x" , "op" : "i" , "row" : { } } ]`))
	qkeys := quotedNames(pairsTable.PrimaryKey)
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = eachElem(data, func(e []byte) error {
			rc, err := parseRawChange(e)
			if err != nil {
				return nil
			}
			if rc.row != nil {
				_ = appendKeyFromRow(nil, rc.row, qkeys)
			}
			if rc.key != nil {
				_ = appendKeyFromKey(nil, rc.key)
			}
			return nil
		})
		if i, err := skipValue(data, 0); err == nil && i > len(data) {
			t.Fatalf("skipValue ran past the input: %d > %d", i, len(data))
		}
	})
}
