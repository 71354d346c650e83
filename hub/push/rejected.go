package push

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/syncproto"
)

// Rejected-change statuses.
const (
	StatusRetried   = "retried"
	StatusDiscarded = "discarded"
)

// RejectedRecord is one change the hub did not write.
type RejectedRecord struct {
	ID      int64  `json:"id"`
	Edge    string `json:"edge"`
	BatchID string `json:"batch_id"`
	Table   string `json:"table"`
	Key     string `json:"key,omitempty"` // syncproto.KeyText; empty when the key was unreadable
	Op      string `json:"op"`
	// Change is the change as the edge sent it (a syncproto.PushChange).
	Change    json.RawMessage `json:"change"`
	Reason    string          `json:"reason"`
	Code      string          `json:"code"`
	Created   time.Time       `json:"created"`
	Status    string          `json:"status"`
	HandledBy string          `json:"handled_by,omitempty"`
	HandledAt *time.Time      `json:"handled_at,omitempty"`
	// Result is the answer of the retry that wrote it (a syncproto.PushResult).
	Result json.RawMessage `json:"result,omitempty"`
}

const rejectedColumns = `id, edge, batch_id, tbl, key, op, change, reason, code, created, status, handled_by, handled_at, result`

func scanRejected(sc interface{ Scan(...any) error }) (RejectedRecord, error) {
	var (
		r                  RejectedRecord
		change             string
		res                sql.NullString
		created, handledAt int64
	)
	if err := sc.Scan(&r.ID, &r.Edge, &r.BatchID, &r.Table, &r.Key, &r.Op, &change, &r.Reason, &r.Code,
		&created, &r.Status, &r.HandledBy, &handledAt, &res); err != nil {
		return r, err
	}
	r.Change, r.Result, r.Created = json.RawMessage(change), rawOrNil(res), fromMicros(created)
	if handledAt != 0 {
		t := fromMicros(handledAt)
		r.HandledAt = &t
	}
	return r, nil
}

// RejectedChanges lists rejected changes.
func (s *Service) RejectedChanges(ctx context.Context, f ListFilter) ([]RejectedRecord, error) {
	where, args, err := f.where(StatusOpen, StatusRetried, StatusDiscarded)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+rejectedColumns+` FROM rejected`+where, args...)
	if err != nil {
		return nil, fmt.Errorf("list rejected changes: %w", err)
	}
	defer rows.Close()
	out := []RejectedRecord{}
	for rows.Next() {
		r, err := scanRejected(rows)
		if err != nil {
			return nil, fmt.Errorf("list rejected changes: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// RejectedChange returns one rejected change; KindNotFound if there is none with id.
func (s *Service) RejectedChange(ctx context.Context, id int64) (RejectedRecord, error) {
	r, err := scanRejected(s.db.QueryRowContext(ctx, `SELECT `+rejectedColumns+` FROM rejected WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, errorf(KindNotFound, "no rejected change with id %d", id)
	}
	if err != nil {
		return r, fmt.Errorf("read rejected change %d: %w", id, err)
	}
	return r, nil
}

// Retry pushes rejected change id again, as a batch of its own ("retry-<id>-<uuid>"),
// with conflict detection against the current state. Its write is tagged Origin "", so
// every edge, the one that sent it included, receives the result as a normal change.
// If it is written (or resolved as a conflict) the record becomes "retried"; if it is
// rejected again the record stays open with the new reason. The answer for the change
// is returned in the record's Result. Errors: KindNotFound, KindState when the record
// is not open, KindInvalid for a missing actor.
func (s *Service) Retry(ctx context.Context, id int64, actor string) (RejectedRecord, error) {
	if strings.TrimSpace(actor) == "" {
		return RejectedRecord{}, errorf(KindInvalid, "actor is empty; say who retries the change")
	}
	s.resolveMu.Lock()
	defer s.resolveMu.Unlock()
	r, err := s.openRejected(ctx, id)
	if err != nil {
		return r, err
	}
	var pc syncproto.PushChange
	if err := json.Unmarshal(r.Change, &pc); err != nil {
		return r, fmt.Errorf("stored change of rejected change %d: %w", id, err)
	}
	now := s.now()
	req := syncproto.PushRequest{Edge: r.Edge, BatchID: fmt.Sprintf("retry-%d-%s", id, uuid.NewString()), Changes: []syncproto.PushChange{pc}}
	unlock := s.batchLocks.lock(req.BatchID)
	resp, err := s.run(ctx, req, runOpts{origin: "", retryOf: id})
	unlock()
	if err != nil {
		return r, err
	}
	res := resp.Results[0]
	raw, _ := json.Marshal(res)
	outcome := res.Status
	if res.Status != syncproto.PushRejected {
		if _, err := s.db.ExecContext(context.WithoutCancel(ctx), `UPDATE rejected SET status = ?, handled_by = ?, handled_at = ?, result = ? WHERE id = ?`,
			StatusRetried, actor, micros(now), string(raw), id); err != nil {
			return r, fmt.Errorf("mark rejected change %d retried: %w", id, err)
		}
	} else {
		outcome = "rejected_again"
		if _, err := s.db.ExecContext(context.WithoutCancel(ctx), `UPDATE rejected SET result = ? WHERE id = ?`, string(raw), id); err != nil {
			return r, fmt.Errorf("record retry of rejected change %d: %w", id, err)
		}
	}
	s.appendAudit(ctx, audit.Event{
		Time: now, Actor: adminActor(actor), Action: audit.ActionAdmin, Edge: r.Edge, Table: r.Table, Key: r.Key,
		Outcome: outcome, Detail: fmt.Sprintf("retry rejected change %d as batch %s: %s", id, req.BatchID, strings.TrimSpace(res.Reason)),
		After: validJSON(pc.Row),
	})
	return s.RejectedChange(context.WithoutCancel(ctx), id)
}

// Discard marks rejected change id discarded: the edge's change is given up. Errors:
// KindNotFound, KindState when the record is not open, KindInvalid for a missing actor.
func (s *Service) Discard(ctx context.Context, id int64, actor string) (RejectedRecord, error) {
	if strings.TrimSpace(actor) == "" {
		return RejectedRecord{}, errorf(KindInvalid, "actor is empty; say who discards the change")
	}
	s.resolveMu.Lock()
	defer s.resolveMu.Unlock()
	r, err := s.openRejected(ctx, id)
	if err != nil {
		return r, err
	}
	now := s.now()
	if _, err := s.db.ExecContext(ctx, `UPDATE rejected SET status = ?, handled_by = ?, handled_at = ? WHERE id = ?`,
		StatusDiscarded, actor, micros(now), id); err != nil {
		return r, fmt.Errorf("discard rejected change %d: %w", id, err)
	}
	var pc syncproto.PushChange
	_ = json.Unmarshal(r.Change, &pc)
	s.appendAudit(ctx, audit.Event{
		Time: now, Actor: adminActor(actor), Action: audit.ActionAdmin, Edge: r.Edge, Table: r.Table, Key: r.Key,
		Outcome: StatusDiscarded, Detail: fmt.Sprintf("discard rejected change %d (%s: %s)", id, r.Code, r.Reason),
		After: validJSON(pc.Row),
	})
	return s.RejectedChange(context.WithoutCancel(ctx), id)
}

func (s *Service) openRejected(ctx context.Context, id int64) (RejectedRecord, error) {
	r, err := s.RejectedChange(ctx, id)
	if err != nil {
		return r, err
	}
	if r.Status != StatusOpen {
		return r, errorf(KindState, "rejected change %d is %s already (by %s)", id, r.Status, r.HandledBy)
	}
	return r, nil
}
