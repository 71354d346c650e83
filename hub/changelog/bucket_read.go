package changelog

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

const readBucketSQL = `SELECT e.version, e.n, e.ords, e.data, v.origin, v.commit_us, v.schema_version
	FROM bentries e JOIN versions v ON v.version = e.version
	WHERE e.bucket = ? AND e.version >= ? AND e.version <= ? ORDER BY e.version LIMIT ?`

// bucketReadStep is how many entries of one bucket a page reads at a time.
const bucketReadStep = 256

// bucketCursor reads one bucket's entries in version order.
type bucketCursor struct {
	id   int64
	from int64 // next version to read
	buf  []bucketEntry
	done bool
}

// fill reads the next entries when none are buffered.
func (bc *bucketCursor) fill(ctx context.Context, tx *sql.Tx, head int64, step int) error {
	if len(bc.buf) > 0 || bc.done {
		return nil
	}
	got, err := readBucket(ctx, tx, bc.id, bc.from, head, step)
	if err != nil {
		return err
	}
	bc.buf = got
	if len(got) < step {
		bc.done = true
	}
	if len(got) > 0 {
		bc.from = got[len(got)-1].version + 1
	}
	return nil
}

// bucketEntry is one stored bucket entry: a version's changes in one bucket.
type bucketEntry struct {
	version, commitUS, schema int64
	n                         int
	ords, data                []byte
	origin                    string
}

// readBuckets serves a scoped page (see PageRequest.Scoped) from the bucket index.
// Every version arrives whole, in one entry; with several buckets a version's
// changes are merged in their order in the version. A cursor, when set, names the
// last version sent, so a page never has to stop inside a version; pages end
// uncommitted only inside a compacted prefix, as unscoped pages do.
func (s *SQLiteStore) readBuckets(ctx context.Context, tx *sql.Tx, req PageRequest, limit int, head, schemaVersion, compacted, seal int64) (*Page, error) {
	since := req.Since
	from := since + 1
	if cur := req.Cursor; cur != (syncproto.Cursor{}) {
		if cur.Version <= since || cur.Version > head || cur.Seq < 0 {
			return nil, fmt.Errorf("read page since %d cursor %s: %w: the cursor's version must be after since and at most the head (%d), its seq not negative",
				since, cur, ErrBadCursor, head)
		}
		from = cur.Version + 1
	}
	ids, err := bucketIDs(ctx, tx, req.Buckets)
	if err != nil {
		return nil, err
	}
	// A merge of the buckets by version, each read a few entries at a time, so a
	// page costs about its own entries however many buckets the edge has.
	curs := make([]*bucketCursor, len(ids))
	for i, id := range ids {
		curs[i] = &bucketCursor{id: id, from: from}
	}
	step := min(limit+1, bucketReadStep)
	p := &Page{Head: head, Next: head}
	body := make([]byte, headerReserve, headerReserve+1024)
	var (
		dataBytes int
		entries   int
		group     []bucketEntry
		lastV     = from - 1
	)
	for {
		v := int64(math.MaxInt64)
		for _, bc := range curs {
			if err := bc.fill(ctx, tx, head, step); err != nil {
				return nil, err
			}
			if len(bc.buf) > 0 && bc.buf[0].version < v {
				v = bc.buf[0].version
			}
		}
		if v == math.MaxInt64 {
			break // every bucket is read to the head
		}
		group = group[:0]
		n, size := 0, 0
		for _, bc := range curs {
			if len(bc.buf) > 0 && bc.buf[0].version == v {
				e := bc.buf[0]
				group = append(group, e)
				n += e.n
				size += len(e.data)
			}
		}
		if entries > 0 && (p.Changes+n > limit || dataBytes+size > s.cfg.MaxPageBytes) {
			p.Next = lastV
			break
		}
		for _, bc := range curs {
			if len(bc.buf) > 0 && bc.buf[0].version == v {
				bc.buf = bc.buf[1:]
			}
		}
		if entries > 0 {
			body = append(body, ',')
		}
		body, err = appendBucketEntry(body, group)
		if err != nil {
			return nil, fmt.Errorf("read page: version %d: %w", v, err)
		}
		entries++
		dataBytes += size
		p.Changes += n
		lastV = v
	}
	_ = tx.Rollback()
	p.Commit = !(since < compacted && p.Next < seal)
	if !p.Commit {
		p.Cursor = syncproto.Cursor{Version: p.Next}
	}
	p.Body = closeBody(body, since, p, schemaVersion)
	return p, nil
}

// bucketIDs resolves bucket names; buckets that were never written are left out.
func bucketIDs(ctx context.Context, tx *sql.Tx, names []string) ([]int64, error) {
	ids := make([]int64, 0, len(names))
	for _, name := range names {
		var id int64
		err := tx.QueryRowContext(ctx, getBucketSQL, name).Scan(&id)
		if err == sql.ErrNoRows {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read page: bucket %s: %w", name, err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func readBucket(ctx context.Context, tx *sql.Tx, id, from, head int64, limit int) ([]bucketEntry, error) {
	rows, err := tx.QueryContext(ctx, readBucketSQL, id, from, head, limit)
	if err != nil {
		return nil, fmt.Errorf("read page: bucket entries: %w", err)
	}
	defer rows.Close()
	var out []bucketEntry
	for rows.Next() {
		var e bucketEntry
		if err := rows.Scan(&e.version, &e.n, &e.ords, &e.data, &e.origin, &e.commitUS, &e.schema); err != nil {
			return nil, fmt.Errorf("read page: bucket entries: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read page: bucket entries: %w", err)
	}
	return out, nil
}

// appendBucketEntry appends one page entry holding a version's bucket entries. One
// entry's bytes are copied as stored; several are merged by ordinal, a delete before
// an insert of the same ordinal (a row moving between two of the edge's buckets).
func appendBucketEntry(b []byte, es []bucketEntry) ([]byte, error) {
	e := es[0]
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, e.version, 10)
	b = append(b, `,"seq":0,"last":true,"origin":`...)
	b = cdc.AppendJSONString(b, e.origin)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, e.commitUS, 10)
	b = append(b, `,"schema":`...)
	b = strconv.AppendInt(b, e.schema, 10)
	b = append(b, `,"changes":`...)
	if len(es) == 1 {
		b = append(b, e.data...)
		return append(b, '}'), nil
	}
	type item struct {
		ord  int64
		del  bool
		elem []byte
	}
	var items []item
	for _, e := range es {
		ords, err := parseOrds(e.ords)
		if err != nil {
			return nil, err
		}
		k := 0
		err = eachElem(e.data, func(elem []byte) error {
			if k >= len(ords) {
				return fmt.Errorf("bucket entry has more changes than ordinals (%d)", len(ords))
			}
			rc, err := parseRawChange(elem)
			if err != nil {
				return err
			}
			items = append(items, item{ord: ords[k], del: rc.op == 'd', elem: elem})
			k++
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].ord != items[j].ord {
			return items[i].ord < items[j].ord
		}
		return items[i].del && !items[j].del
	})
	b = append(b, '[')
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it.elem...)
	}
	return append(b, "]}"...), nil
}
