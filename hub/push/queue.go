package push

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/syncproto"
)

// Conflict statuses.
const (
	StatusOpen     = "open"
	StatusResolved = "resolved"
)

// Resolution actions for a queued conflict.
const (
	ActionKeepServer = "keep_server" // the server's row stays; nothing is written
	ActionTakeClient = "take_client" // the edge's change is written
	ActionMerged     = "merged"      // a row given by the admin is written
)

// ConflictRecord is one conflict of the manual queue.
type ConflictRecord struct {
	ID          int64           `json:"id"`
	Edge        string          `json:"edge"`
	BatchID     string          `json:"batch_id"`
	Table       string          `json:"table"`
	Key         string          `json:"key"`     // syncproto.KeyText
	KeyRow      json.RawMessage `json:"key_row"` // the key columns as an object
	Op          string          `json:"op"`      // the edge's operation: i, u or d
	Kind        string          `json:"kind"`
	BaseVersion int64           `json:"base_version"`
	Base        json.RawMessage `json:"base,omitempty"`
	Client      json.RawMessage `json:"client,omitempty"` // the edge's row (absent for a delete)
	Server      json.RawMessage `json:"server,omitempty"` // the server's row when queued
	Created     time.Time       `json:"created"`
	Status      string          `json:"status"`
	Resolution  string          `json:"resolution,omitempty"`
	ResolvedBy  string          `json:"resolved_by,omitempty"`
	ResolvedAt  *time.Time      `json:"resolved_at,omitempty"`
	// Result is the row written by the resolution (absent when nothing was written or
	// the row was deleted).
	Result json.RawMessage `json:"result,omitempty"`
}

// ListFilter selects queued conflicts or rejected changes; empty fields match all.
// Results are ordered by id; AfterID pages forward.
type ListFilter struct {
	Status  string
	Table   string
	Edge    string
	AfterID int64
	Limit   int // 0: 100; at most 1000
}

const (
	defaultListLimit = 100
	maxListLimit     = 1000
)

func (f ListFilter) where(statuses ...string) (string, []any, error) {
	if f.Status != "" && !contains(statuses, f.Status) {
		return "", nil, errorf(KindInvalid, "status %q: use one of %s", f.Status, strings.Join(statuses, ", "))
	}
	if f.Limit < 0 || f.Limit > maxListLimit {
		return "", nil, errorf(KindInvalid, "limit %d: use 1 to %d", f.Limit, maxListLimit)
	}
	if f.AfterID < 0 {
		return "", nil, errorf(KindInvalid, "after_id %d: must not be negative", f.AfterID)
	}
	conds := []string{"id > ?"}
	args := []any{f.AfterID}
	for _, c := range []struct{ col, v string }{{"status", f.Status}, {"tbl", f.Table}, {"edge", f.Edge}} {
		if c.v != "" {
			conds = append(conds, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	limit := f.Limit
	if limit == 0 {
		limit = defaultListLimit
	}
	args = append(args, limit)
	return " WHERE " + strings.Join(conds, " AND ") + " ORDER BY id LIMIT ?", args, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

const conflictColumns = `id, edge, batch_id, tbl, key, key_json, op, kind, base_version, base, client, server, created, status, resolution, resolved_by, resolved_at, result`

func scanConflict(sc interface{ Scan(...any) error }) (ConflictRecord, error) {
	var (
		c                         ConflictRecord
		keyRow                    string
		base, client, server, res sql.NullString
		created, resolvedAt       int64
	)
	if err := sc.Scan(&c.ID, &c.Edge, &c.BatchID, &c.Table, &c.Key, &keyRow, &c.Op, &c.Kind, &c.BaseVersion,
		&base, &client, &server, &created, &c.Status, &c.Resolution, &c.ResolvedBy, &resolvedAt, &res); err != nil {
		return c, err
	}
	c.KeyRow = json.RawMessage(keyRow)
	c.Base, c.Client, c.Server, c.Result = rawOrNil(base), rawOrNil(client), rawOrNil(server), rawOrNil(res)
	c.Created = fromMicros(created)
	if resolvedAt != 0 {
		t := fromMicros(resolvedAt)
		c.ResolvedAt = &t
	}
	return c, nil
}

func rawOrNil(s sql.NullString) json.RawMessage {
	if !s.Valid {
		return nil
	}
	return json.RawMessage(s.String)
}

// Conflicts lists queued conflicts.
func (s *Service) Conflicts(ctx context.Context, f ListFilter) ([]ConflictRecord, error) {
	where, args, err := f.where(StatusOpen, StatusResolved)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+conflictColumns+` FROM conflicts`+where, args...)
	if err != nil {
		return nil, fmt.Errorf("list conflicts: %w", err)
	}
	defer rows.Close()
	out := []ConflictRecord{}
	for rows.Next() {
		c, err := scanConflict(rows)
		if err != nil {
			return nil, fmt.Errorf("list conflicts: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Conflict returns one queued conflict; KindNotFound if there is none with id.
func (s *Service) Conflict(ctx context.Context, id int64) (ConflictRecord, error) {
	c, err := scanConflict(s.db.QueryRowContext(ctx, `SELECT `+conflictColumns+` FROM conflicts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return c, errorf(KindNotFound, "no conflict with id %d", id)
	}
	if err != nil {
		return c, fmt.Errorf("read conflict %d: %w", id, err)
	}
	return c, nil
}

// Resolve resolves queued conflict id: keep_server writes nothing, take_client writes
// the edge's change, merged writes mergedRow (all columns as a JSON object, key
// included). A write goes through the Applier tagged Origin "" and Batch
// "resolve-<id>", so every edge, the pushing one included, receives the result as a
// normal change. The conflict is then marked resolved by actor and audited.
//
// Errors: KindInvalid for an unknown action, a missing actor or a bad row;
// KindNotFound; KindState when the conflict is resolved already or the central
// database refused the write (the conflict stays open); KindUnavailable when the
// central database could not be reached.
func (s *Service) Resolve(ctx context.Context, id int64, action string, mergedRow json.RawMessage, actor string) (ConflictRecord, error) {
	if strings.TrimSpace(actor) == "" {
		return ConflictRecord{}, errorf(KindInvalid, "actor is empty; say who resolves the conflict")
	}
	switch action {
	case ActionKeepServer, ActionTakeClient, ActionMerged:
	default:
		return ConflictRecord{}, errorf(KindInvalid, "action %q: use keep_server, take_client or merged", action)
	}
	s.resolveMu.Lock()
	defer s.resolveMu.Unlock()
	c, err := s.Conflict(ctx, id)
	if err != nil {
		return c, err
	}
	if c.Status != StatusOpen {
		return c, errorf(KindState, "conflict %d was already resolved (%s by %s)", id, c.Resolution, c.ResolvedBy)
	}
	sch, _, err := s.store.Schema(ctx)
	if err != nil || sch == nil {
		return c, &Error{Kind: KindUnavailable, Message: "the hub has no schema to decode the conflict's rows; retry later", Err: err}
	}
	tbl, ok := sch.Table(c.Table)
	if !ok {
		return c, errorf(KindState, "table %s of conflict %d is no longer synchronised; discard the conflict's change by keeping the server's row", c.Table, id)
	}
	key, err := decodeObject(tbl, c.KeyRow, "key", true)
	if err != nil {
		return c, fmt.Errorf("stored key of conflict %d: %w", id, err)
	}
	var (
		desired cdc.Row
		write   bool
	)
	switch action {
	case ActionTakeClient:
		write = true
		if c.Op != "d" {
			if desired, err = decodeObject(tbl, c.Client, "client row", false); err != nil {
				return c, errorf(KindState, "the edge's row of conflict %d no longer fits table %s: %v; resolve with a merged row", id, c.Table, err)
			}
		}
	case ActionMerged:
		write = true
		if desired, err = decodeObject(tbl, mergedRow, "row", false); err != nil {
			return c, errorf(KindInvalid, "merged row for conflict %d: %v", id, err)
		}
		for _, k := range tbl.PrimaryKey {
			want, _ := key.Get(k)
			if got, ok := desired.Get(k); !ok || !got.Equal(want) {
				return c, errorf(KindInvalid, "merged row for conflict %d: key column %s must be %s", id, k, want)
			}
		}
	}
	server, result, err := s.writeResolution(ctx, id, tbl, key, desired, write)
	if err != nil {
		return c, err
	}
	now := s.now()
	if _, err := s.db.ExecContext(context.WithoutCancel(ctx), `UPDATE conflicts SET status = ?, resolution = ?, resolved_by = ?, resolved_at = ?, result = ? WHERE id = ?`,
		StatusResolved, action, actor, micros(now), nullText(rowJSON(result)), id); err != nil {
		return c, fmt.Errorf("mark conflict %d resolved: %w", id, err)
	}
	s.appendAudit(ctx, audit.Event{
		Time: now, Actor: adminActor(actor), Action: audit.ActionResolve, Edge: c.Edge, Table: c.Table, Key: c.Key,
		Outcome: action, Detail: fmt.Sprintf("conflict_id=%d kind=%s batch=%s", id, c.Kind, c.BatchID),
		Before: rowJSON(server), After: rowJSON(result),
	})
	return s.Conflict(context.WithoutCancel(ctx), id)
}

// writeResolution reads the server's current row and, when write is set, brings the
// row to desired (nil: deleted) through the Applier. It runs in the same critical
// section as push detection and writes, and the row counts as written by the central
// database until its transaction is captured, so pushes after it see it as a conflict.
func (s *Service) writeResolution(ctx context.Context, id int64, tbl *cdc.Table, key, desired cdc.Row, write bool) (server, result cdc.Row, err error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	server, found, err := s.applier.ReadRow(ctx, tbl.Name, key)
	if err != nil {
		return nil, nil, &Error{Kind: KindUnavailable, Message: "read the current row from the central database; retry later", Err: err}
	}
	if !found {
		server = nil
	}
	if !write {
		return server, server, nil
	}
	w := writeTo(tbl.Name, key, desired, found)
	if w == nil {
		return server, desired, nil
	}
	batch := fmt.Sprintf("resolve-%d", id)
	// A waiter, only so that a capture faster than the write's return is noticed (see
	// addPending).
	landed := s.addWaiter(batch)
	defer s.removeWaiter(batch, landed)
	res, err := s.applier.Apply(ctx, cdc.Tag{Batch: batch}, []cdc.Change{*w})
	if err != nil {
		return nil, nil, &Error{Kind: KindUnavailable, Message: "the central database did not accept the resolution; nothing was written; retry later", Err: err}
	}
	if len(res) == 1 && res[0].Err != nil {
		return nil, nil, errorf(KindState, "the central database refused the resolution of conflict %d: %v", id, res[0].Err)
	}
	s.addPending(batch, rowRef{tbl.Name, syncproto.KeyText(tbl, key)}, "", s.now(), desired == nil, landed)
	return server, desired, nil
}

// adminActor names an admin for the audit log; a name already in actor form is kept.
func adminActor(name string) string {
	if strings.HasPrefix(name, audit.AdminActorPrefix) || name == audit.ActorSystem {
		return name
	}
	return audit.AdminActor(name)
}

// appendAudit writes events to the audit log. What they record has happened already,
// so a failing audit log cannot undo it: the failure is logged at error level.
func (s *Service) appendAudit(ctx context.Context, events ...audit.Event) {
	if s.audit == nil || len(events) == 0 {
		return
	}
	for i := range events {
		clipEvent(&events[i])
	}
	if err := s.audit.Append(context.WithoutCancel(ctx), events...); err != nil {
		s.log.Error("write audit events", "action", events[0].Action, "edge_id", events[0].Edge, "events", len(events), "err", err)
	}
}

// Audit field limits (see package audit): longer values are cut, so that one long key
// or database message cannot make the log refuse the events of a whole batch.
const (
	auditNameMax   = 1024
	auditDetailMax = 1 << 16
)

func clipEvent(e *audit.Event) {
	e.Key = clip(e.Key, auditNameMax)
	e.Table = clip(e.Table, auditNameMax)
	e.Outcome = clip(e.Outcome, auditNameMax)
	e.Detail = clip(e.Detail, auditDetailMax)
}

// clip cuts s to at most n bytes on a UTF-8 boundary, marking the cut with "…".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
