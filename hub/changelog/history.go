package changelog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

// RowVersion is one change of a row in the change log.
type RowVersion struct {
	Version    int64
	Seq        int       // the chunk of the version that holds the change
	Op         cdc.Op    // insert, update, delete, or truncate of the row's table
	Origin     string    // "" for the central database, else the edge whose push wrote it
	CommitTime time.Time // the source transaction's commit time
	// Row is the row image after the change as wire JSON (nil for deletes and
	// truncates); Key is the old key for deletes and key-changing updates.
	Row json.RawMessage
	Key json.RawMessage
}

// historyPageLimit is how many changes RowHistory reads per page.
const historyPageLimit = 5000

// RowHistory returns the versions of one row still in the change log, newest first, at
// most limit of them (limit ≤ 0: 100). key is the row's syncproto.KeyText, such as
// [42] or ["eu",7]. A truncate of the table counts as a change of every row. Changes
// that compaction removed are not returned.
//
// It reads the whole change log through ReadPage, so it costs as much as a pull from
// version 0: it suits an admin page, not a hot path.
func RowHistory(ctx context.Context, s Store, table, key string, limit int) ([]RowVersion, error) {
	if limit <= 0 {
		limit = 100
	}
	sch, _, err := s.Schema(ctx)
	if err != nil {
		return nil, fmt.Errorf("row history: read schema: %w", err)
	}
	if sch == nil {
		return nil, nil
	}
	tbl, ok := sch.Table(table)
	if !ok {
		return nil, fmt.Errorf("row history: table %q is not captured; use a table name from /v1/schema such as %q", table, firstTable(sch))
	}
	var want bytes.Buffer
	if err := json.Compact(&want, []byte(key)); err != nil {
		return nil, fmt.Errorf("row history: key %q is not a JSON array of the key values (such as [42]): %v", key, err)
	}
	needles, err := keyNeedles(tbl, want.Bytes())
	if err != nil {
		return nil, fmt.Errorf("row history: key %s: %v", key, err)
	}
	st, err := s.State(ctx)
	if err != nil {
		return nil, fmt.Errorf("row history: %w", err)
	}
	var (
		ring []RowVersion
		req  = PageRequest{Limit: historyPageLimit}
	)
	// Every page moves the watermark or the cursor forward, so the pages needed are
	// bounded by the head's changes; the cap guards against a store that does not.
	for pages := int64(0); pages <= st.Entries+st.Head+1; pages++ {
		page, err := s.ReadPage(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("row history: read page since %d: %w", req.Since, err)
		}
		// A page that cannot hold the row is not decoded at all.
		if mayHold(page.Body, needles) {
			if ring, err = appendVersions(ring, page.Body, tbl, want.Bytes(), limit); err != nil {
				return nil, fmt.Errorf("row history: page since %d: %w", req.Since, err)
			}
		}
		if page.Changes == 0 || (page.Commit && page.Next >= page.Head) {
			break
		}
		req.Since, req.Cursor = page.Next, page.Cursor
	}
	for i, j := 0, len(ring)-1; i < j; i, j = i+1, j-1 {
		ring[i], ring[j] = ring[j], ring[i]
	}
	return ring, nil
}

// appendVersions adds the page's changes of the row whose compact key text is key to
// ring, keeping the newest limit.
func appendVersions(ring []RowVersion, body []byte, tbl *cdc.Table, key []byte, limit int) ([]RowVersion, error) {
	var wire syncproto.Page
	if err := json.Unmarshal(body, &wire); err != nil {
		return ring, fmt.Errorf("decode: %w", err)
	}
	for _, e := range wire.Entries {
		for _, c := range e.Changes {
			if c.Table != tbl.Name || !touches(tbl, &c, key) {
				continue
			}
			op, err := cdc.ParseOpCode(c.Op)
			if err != nil {
				return ring, fmt.Errorf("version %d: %w", e.Version, err)
			}
			ring = append(ring, RowVersion{Version: e.Version, Seq: e.Seq, Op: op, Origin: e.Origin,
				CommitTime: time.UnixMicro(e.TS).UTC(), Row: c.Row, Key: c.Key})
			if len(ring) > limit {
				ring = ring[1:]
			}
		}
	}
	return ring, nil
}

// keyNeedles returns, for each key column, the bytes `"col":value` that any wire row
// or key object of the row holds (the log writes objects without spaces).
func keyNeedles(tbl *cdc.Table, key []byte) ([][]byte, error) {
	var vals []json.RawMessage
	if err := json.Unmarshal(key, &vals); err != nil {
		return nil, fmt.Errorf("not a JSON array: %v", err)
	}
	if len(vals) != len(tbl.PrimaryKey) {
		return nil, fmt.Errorf("has %d values; table %s has %d key columns (%v)", len(vals), tbl.Name, len(tbl.PrimaryKey), tbl.PrimaryKey)
	}
	out := make([][]byte, len(vals))
	for i, col := range tbl.PrimaryKey {
		b := cdc.AppendJSONString(nil, col)
		b = append(b, ':')
		out[i] = append(b, vals[i]...)
	}
	return out, nil
}

// mayHold reports whether a page body can hold a change of the row: it holds every
// key needle, or a truncate.
func mayHold(body []byte, needles [][]byte) bool {
	if bytes.Contains(body, []byte(`"op":"t"`)) {
		return true
	}
	for _, n := range needles {
		if !containsField(body, n) {
			return false
		}
	}
	return true
}

// containsField reports whether body holds field (`"col":value`) followed by the end
// of the value (a comma or a closing brace), so [1] does not match "id":10.
func containsField(body, field []byte) bool {
	for len(body) > 0 {
		i := bytes.Index(body, field)
		if i < 0 {
			return false
		}
		if end := i + len(field); end < len(body) && (body[end] == ',' || body[end] == '}') {
			return true
		}
		body = body[i+1:]
	}
	return false
}

// touches reports whether a wire change concerns the row whose compact key text is key.
func touches(tbl *cdc.Table, c *syncproto.WireChange, key []byte) bool {
	if c.Op == "t" {
		return true
	}
	return bytes.Equal(wireKeyText(tbl, c.Row), key) || bytes.Equal(wireKeyText(tbl, c.Key), key)
}

// wireKeyText builds the KeyText of a wire row object from its key columns' JSON; nil
// when the object is absent or lacks a key column.
func wireKeyText(tbl *cdc.Table, obj json.RawMessage) []byte {
	if len(obj) == 0 {
		return nil
	}
	var cols map[string]json.RawMessage
	if err := json.Unmarshal(obj, &cols); err != nil {
		return nil
	}
	var b bytes.Buffer
	b.WriteByte('[')
	for i, k := range tbl.PrimaryKey {
		v, ok := cols[k]
		if !ok {
			return nil
		}
		if i > 0 {
			b.WriteByte(',')
		}
		if err := json.Compact(&b, v); err != nil {
			return nil
		}
	}
	b.WriteByte(']')
	return b.Bytes()
}

func firstTable(sch *cdc.Schema) string {
	if len(sch.Tables) == 0 {
		return "schema.table"
	}
	return sch.Tables[0].Name
}
