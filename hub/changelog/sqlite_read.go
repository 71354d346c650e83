package changelog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

// headerReserve is room left at the front of a page body for the envelope, which is
// written last (its next/commit/cursor depend on the entries) and then placed directly
// before the entries, so the body is never copied.
const headerReserve = 256

const readChunksSQL = `SELECT c.id, c.n, c.data, v.origin, v.commit_us, v.schema_version, v.changes, v.bytes, v.last_seq
	FROM chunks c JOIN versions v ON v.version = c.id >> 20
	WHERE c.id >= ? AND c.id < ? ORDER BY c.id`

// ReadPage returns the changes after req.Since (and req.Cursor) as one encoded page.
//
// A page holds whole versions while they fit in the limit; only a version that
// alone exceeds it is split across pages (Commit false, Cursor set, the cursor's
// version being the first version after Since). A page whose watermark is inside the
// compacted prefix (below CompactedThrough) also has Commit false until it reaches the
// head at which that compaction ran: a change dropped from the prefix was superseded
// by a version up to that point, and the edge must not stop before applying it.
// Stored chunk bytes are copied into the body as they are.
func (s *SQLiteStore) ReadPage(ctx context.Context, req PageRequest) (*Page, error) {
	if req.Since < 0 {
		return nil, fmt.Errorf("read page: since %d is negative; pass 0 or the next of a committed page", req.Since)
	}
	limit := req.Limit
	if limit <= 0 {
		limit = s.cfg.PageLimit
	}
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("read page: %w", err)
	}
	defer tx.Rollback()
	var head, schemaVersion, compacted, seal, horizon int64
	if err := tx.QueryRowContext(ctx, `SELECT head, schema_version, compacted_through, compact_seal, tombstone_horizon
		FROM state WHERE id = 1`).Scan(&head, &schemaVersion, &compacted, &seal, &horizon); err != nil {
		return nil, fmt.Errorf("read page: state: %w", err)
	}
	since := req.Since
	switch {
	case since > head:
		return nil, fmt.Errorf("read page since %d: %w (head %d)", since, ErrAhead, head)
	case since > 0 && since < horizon:
		return nil, fmt.Errorf("read page since %d: %w (horizon %d)", since, ErrTooOld, horizon)
	}
	if req.Scoped {
		return s.readBuckets(ctx, tx, req, limit, head, schemaVersion, compacted, seal)
	}
	startV, startSeq := since+1, 0
	if cur := req.Cursor; cur != (syncproto.Cursor{}) {
		if err := checkCursor(ctx, tx, since, head, compacted, cur); err != nil {
			return nil, err
		}
		startV, startSeq = cur.Version, cur.Seq+1
		if startSeq > maxChunkSeq {
			startV, startSeq = startV+1, 0
		}
	}

	p := &Page{Head: head, Next: since}
	var body []byte
	rows, err := tx.QueryContext(ctx, readChunksSQL, chunkID(startV, startSeq), chunkID(head+1, 0))
	if err != nil {
		return nil, fmt.Errorf("read page: %w", err)
	}
	var (
		curV      int64
		complete  = true
		lastV     int64
		lastSeq   int
		stopped   bool
		dataBytes int
		entries   int
		qorigin   []byte
		lastOrig  = []byte{0} // never equal to a scanned origin
	)
	for rows.Next() {
		var (
			id, n, commitUS, schemaV, vChanges, vBytes int64
			vLast                                      int
			data, origin                               sql.RawBytes
		)
		if err := rows.Scan(&id, &n, &data, &origin, &commitUS, &schemaV, &vChanges, &vBytes, &vLast); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read page: %w", err)
		}
		v, seq := splitChunkID(id)
		if v != curV {
			// Versions after the first are taken whole or not at all.
			if entries > 0 && (p.Changes+int(vChanges) > limit || dataBytes+int(vBytes) > s.cfg.MaxPageBytes) {
				p.Next = v - 1
				stopped = true
				break
			}
			curV = v
		}
		if entries > 0 && (p.Changes+int(n) > limit || dataBytes+len(data) > s.cfg.MaxPageBytes) {
			stopped = true
			break
		}
		if body == nil {
			body = make([]byte, headerReserve, headerReserve+estimatePage(len(data), int(n), limit, s.cfg.MaxPageBytes))
		} else {
			body = append(body, ',')
		}
		if string(origin) != string(lastOrig) {
			lastOrig = append(lastOrig[:0], origin...)
			qorigin = cdc.AppendJSONString(qorigin[:0], string(origin))
		}
		body = append(body, `{"v":`...)
		body = strconv.AppendInt(body, v, 10)
		body = append(body, `,"seq":`...)
		body = strconv.AppendInt(body, int64(seq), 10)
		body = append(body, `,"last":`...)
		body = strconv.AppendBool(body, seq == vLast)
		body = append(body, `,"origin":`...)
		body = append(body, qorigin...)
		body = append(body, `,"ts":`...)
		body = strconv.AppendInt(body, commitUS, 10)
		body = append(body, `,"schema":`...)
		body = strconv.AppendInt(body, schemaV, 10)
		body = append(body, `,"changes":`...)
		body = append(body, data...)
		body = append(body, '}')
		entries++
		dataBytes += len(data)
		p.Changes += int(n)
		lastV, lastSeq = v, seq
		complete = seq == vLast
		if complete {
			p.Next = v
		}
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, fmt.Errorf("read page: %w", err)
	}
	rows.Close()
	_ = tx.Rollback()
	if !stopped && complete {
		p.Next = head // versions without chunks up to head are passed over
	}
	p.Commit = true
	switch {
	case !complete:
		p.Commit = false
	case since < compacted && p.Next < seal:
		p.Commit = false
	}
	if !p.Commit {
		p.Cursor = syncproto.Cursor{Version: lastV, Seq: lastSeq}
	}
	if body == nil {
		body = make([]byte, headerReserve, headerReserve+2)
	}
	p.Body = closeBody(body, since, p, schemaVersion)
	return p, nil
}

// closeBody ends a page body built after headerReserve spare bytes: it closes the
// changes array and writes the header into the end of the spare bytes, returning the
// page's bytes.
func closeBody(body []byte, since int64, p *Page, schemaVersion int64) []byte {
	body = append(body, "]}"...)
	var hb [headerReserve]byte
	h := appendHeader(hb[:0], since, p, schemaVersion)
	start := headerReserve - len(h)
	copy(body[start:], h)
	return body[start:]
}

func appendHeader(b []byte, since int64, p *Page, schemaVersion int64) []byte {
	b = append(b, `{"since":`...)
	b = strconv.AppendInt(b, since, 10)
	b = append(b, `,"next":`...)
	b = strconv.AppendInt(b, p.Next, 10)
	b = append(b, `,"cursor":"`...)
	b = append(b, p.Cursor.String()...)
	b = append(b, `","commit":`...)
	b = strconv.AppendBool(b, p.Commit)
	b = append(b, `,"head":`...)
	b = strconv.AppendInt(b, p.Head, 10)
	b = append(b, `,"schema_version":`...)
	b = strconv.AppendInt(b, schemaVersion, 10)
	return append(b, `,"entries":[`...)
}

// estimatePage guesses a page's size from its first chunk, to allocate the body once.
func estimatePage(chunkBytes, chunkChanges, limit, maxBytes int) int {
	est := chunkBytes + 256
	if chunkChanges > 0 && limit > chunkChanges {
		est = int(int64(chunkBytes) * int64(limit) / int64(chunkChanges) * 11 / 10)
	}
	return min(max(est, chunkBytes+256), maxBytes+64<<10)
}

// checkCursor accepts a cursor that continues since: inside the first version after
// since that has chunks, or anywhere up to head while since is inside the compacted
// prefix (such pages may end at any version boundary before CompactedThrough).
func checkCursor(ctx context.Context, tx *sql.Tx, since, head, compacted int64, cur syncproto.Cursor) error {
	if cur.Version <= since || cur.Version > head || cur.Seq < 0 {
		return fmt.Errorf("read page since %d cursor %s: %w: the cursor's version must be after since and at most the head (%d), its seq not negative",
			since, cur, ErrBadCursor, head)
	}
	if since < compacted {
		// Compaction may have removed the version's later chunks since the cursor was
		// handed out; reading on from it skips to the next chunk that remains.
		return nil
	}
	var lastSeq int64
	err := tx.QueryRowContext(ctx, `SELECT last_seq FROM versions WHERE version = ?`, cur.Version).Scan(&lastSeq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read page: check cursor: %w", err)
	}
	if errors.Is(err, sql.ErrNoRows) || int64(cur.Seq) > lastSeq {
		return fmt.Errorf("read page since %d cursor %s: %w: version %d has no chunk %d; pass the cursor of the previous page as it was",
			since, cur, ErrBadCursor, cur.Version, cur.Seq)
	}
	var id int64
	err = tx.QueryRowContext(ctx, `SELECT id FROM chunks WHERE id >= ? ORDER BY id LIMIT 1`, chunkID(since+1, 0)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read page since %d cursor %s: %w: nothing follows since", since, cur, ErrBadCursor)
	}
	if err != nil {
		return fmt.Errorf("read page: check cursor: %w", err)
	}
	if first, _ := splitChunkID(id); first != cur.Version {
		return fmt.Errorf("read page since %d cursor %s: %w: the transaction after since is version %d",
			since, cur, ErrBadCursor, first)
	}
	return nil
}
