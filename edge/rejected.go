package edge

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// RejectedChange is a local change the hub (or the agent) refused, kept in
// _synchub_rejected so that it is never silently lost.
type RejectedChange struct {
	ID          int64           `json:"id"`
	Seq         int64           `json:"seq"` // the outbox entry (the last of its row's folded entries)
	Table       string          `json:"table"`
	Key         json.RawMessage `json:"key,omitempty"`
	Op          string          `json:"op"`
	Row         json.RawMessage `json:"row,omitempty"`
	BaseVersion int64           `json:"base_version"`
	Reason      string          `json:"reason"`
	Code        string          `json:"code"`
	BatchID     string          `json:"batch_id,omitempty"`
	At          time.Time       `json:"at"`
}

// Rejected returns up to limit rejected changes, newest first. It reads through the
// application's pool and may be called at any time.
func (a *Agent) Rejected(ctx context.Context, limit int) ([]RejectedChange, error) {
	if a.closed.Load() {
		return nil, ErrClosed
	}
	if limit <= 0 {
		limit = 100
	}
	rows, err := a.db.db.QueryContext(ctx, `SELECT id, seq, tbl, key_json, op, row_json, base_version, reason, code, batch_id, at
		FROM _synchub_rejected ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("read _synchub_rejected: %w", err)
	}
	defer rows.Close()
	var out []RejectedChange
	for rows.Next() {
		var r RejectedChange
		var key, row, batch sql.NullString
		var at int64
		if err := rows.Scan(&r.ID, &r.Seq, &r.Table, &key, &r.Op, &row, &r.BaseVersion, &r.Reason, &r.Code, &batch, &at); err != nil {
			return nil, fmt.Errorf("read _synchub_rejected: %w", err)
		}
		if key.Valid && json.Valid([]byte(key.String)) {
			r.Key = json.RawMessage(key.String)
		}
		if row.Valid && json.Valid([]byte(row.String)) {
			r.Row = json.RawMessage(row.String)
		}
		r.BatchID, r.At = batch.String, time.UnixMicro(at)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read _synchub_rejected: %w", err)
	}
	return out, nil
}
