package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// KeyPrefix starts every API key, so a key is recognisable in a config file or a leak
// scanner and is never mistaken for a JWT.
const KeyPrefix = "shk_"

// SecretPrefix starts every request-signing secret.
const SecretPrefix = "shs_"

// keyBytes is the random part of a key or signing secret: 256 bits.
const keyBytes = 32

// keysDDL creates the key table. A key is stored only as the SHA-256 of its text: the
// key is 256 random bits, so a fast hash is enough to make a stolen file useless for
// logging in. Signing secrets must be stored as they are (the hub computes the same
// HMAC), so the file is created readable by its owner only.
var keysDDL = []string{
	`CREATE TABLE IF NOT EXISTS api_keys (
		id TEXT PRIMARY KEY,
		hash BLOB NOT NULL UNIQUE,
		edge TEXT NOT NULL DEFAULT '',
		admin TEXT NOT NULL DEFAULT '',
		role TEXT NOT NULL DEFAULT '',
		claims TEXT NOT NULL DEFAULT '{}',
		signing_secret TEXT NOT NULL DEFAULT '',
		require_signing INTEGER NOT NULL DEFAULT 0,
		created_us INTEGER NOT NULL,
		revoked_us INTEGER)`,
	`CREATE INDEX IF NOT EXISTS api_keys_edge ON api_keys (edge)`,
}

// ErrKeyNotFound is returned by Revoke for an id no key has.
var ErrKeyNotFound = errors.New("no API key with this id")

// KeySpec describes a key to create: exactly one of Edge and Admin is set.
type KeySpec struct {
	// Edge is the edge id the key authenticates.
	Edge string
	// Admin is the admin's name; Role is then RoleViewer or RoleOperator.
	Admin string
	Role  string
	// Claims are handed to sync rules with every request made with the key.
	Claims map[string]any
	// Signing creates a request-signing secret with the key; every request made with
	// it must then be signed (see VerifySignature).
	Signing bool
}

// Validate says what is wrong with the spec.
func (s KeySpec) Validate() error {
	switch {
	case s.Edge == "" && s.Admin == "":
		return errors.New("name the key's owner: an edge id (--edge NAME) or an admin (--admin NAME --role viewer|operator)")
	case s.Edge != "" && s.Admin != "":
		return errors.New("a key belongs to an edge or to an admin, not both; pass --edge or --admin")
	case s.Admin != "" && s.Role != RoleViewer && s.Role != RoleOperator:
		return fmt.Errorf("admin role %q: use %s (read the admin API) or %s (also resolve and retry)", s.Role, RoleViewer, RoleOperator)
	case s.Edge != "" && s.Role != "":
		return errors.New("a role is for admin keys only; drop --role or use --admin")
	case len(s.Edge) > 256 || len(s.Admin) > 256:
		return errors.New("the edge id or admin name is longer than 256 bytes")
	}
	return nil
}

// KeyInfo is a stored key, without its secret parts.
type KeyInfo struct {
	ID      string         `json:"id"`
	Edge    string         `json:"edge,omitempty"`
	Admin   string         `json:"admin,omitempty"`
	Role    string         `json:"role,omitempty"`
	Claims  map[string]any `json:"claims,omitempty"`
	Signing bool           `json:"signing"` // requests must be signed with the key's secret
	Created time.Time      `json:"created"`
	Revoked time.Time      `json:"revoked,omitzero"` // zero while the key is valid
}

// CreatedKey is a new key and, with KeySpec.Signing, its signing secret. Both are
// shown once and cannot be read back.
type CreatedKey struct {
	KeyInfo
	Key           string `json:"key"`
	SigningSecret string `json:"signing_secret,omitempty"`
}

// Keys is the API key database (one SQLite file). It is safe for concurrent use, and
// several processes (the hub and `synchub keys`) may open the same file.
type Keys struct {
	db  *sql.DB
	now func() time.Time
}

// OpenKeys opens (creating if needed, readable by its owner only) the key database at
// path. The folder must exist.
func OpenKeys(ctx context.Context, path string) (*Keys, error) {
	if path == "" {
		return nil, errors.New("keys database: empty path; set auth.keys_path, e.g. ./data/keys.db")
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("keys database %s: %w (does its folder exist and is it writable?)", path, err)
	}
	f.Close()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("keys database %s: %w", path, err)
	}
	for _, stmt := range keysDDL {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			db.Close()
			return nil, fmt.Errorf("keys database %s: create tables: %w", path, err)
		}
	}
	return &Keys{db: db, now: time.Now}, nil
}

// Close closes the database.
func (k *Keys) Close() error { return k.db.Close() }

// Create stores a new key for spec and returns it with its secrets, which are never
// stored in readable form (the key) or shown again (both).
func (k *Keys) Create(ctx context.Context, spec KeySpec) (*CreatedKey, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	claims := spec.Claims
	if claims == nil {
		claims = map[string]any{}
	}
	cj, err := json.Marshal(claims)
	if err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	idb, err := randomBytes(6)
	if err != nil {
		return nil, err
	}
	kb, err := randomBytes(keyBytes)
	if err != nil {
		return nil, err
	}
	out := &CreatedKey{
		KeyInfo: KeyInfo{ID: "key_" + hex.EncodeToString(idb), Edge: spec.Edge, Admin: spec.Admin, Role: spec.Role,
			Claims: claims, Signing: spec.Signing, Created: k.now().UTC().Truncate(time.Microsecond)},
		Key: KeyPrefix + base64.RawURLEncoding.EncodeToString(kb),
	}
	if spec.Signing {
		sb, err := randomBytes(keyBytes)
		if err != nil {
			return nil, err
		}
		out.SigningSecret = SecretPrefix + base64.RawURLEncoding.EncodeToString(sb)
	}
	h := hashKey(out.Key)
	_, err = k.db.ExecContext(ctx, `INSERT INTO api_keys (id, hash, edge, admin, role, claims, signing_secret, require_signing, created_us)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		out.ID, h[:], spec.Edge, spec.Admin, spec.Role, string(cj), out.SigningSecret, spec.Signing, out.Created.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("store key: %w", err)
	}
	return out, nil
}

// List returns every key, valid and revoked, oldest first.
func (k *Keys) List(ctx context.Context) ([]KeyInfo, error) {
	rows, err := k.db.QueryContext(ctx, `SELECT id, edge, admin, role, claims, require_signing, created_us, revoked_us
		FROM api_keys ORDER BY created_us, id`)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer rows.Close()
	var out []KeyInfo
	for rows.Next() {
		var ki KeyInfo
		var secret string
		if err := scanKey(rows, &ki, &secret, false); err != nil {
			return nil, err
		}
		out = append(out, ki)
	}
	return out, rows.Err()
}

// Revoke revokes the key with this id and returns it; revoking a revoked key keeps
// its first revocation time. An unknown id is ErrKeyNotFound.
func (k *Keys) Revoke(ctx context.Context, id string) (KeyInfo, error) {
	now := k.now().UTC().UnixMicro()
	res, err := k.db.ExecContext(ctx, `UPDATE api_keys SET revoked_us = coalesce(revoked_us, ?) WHERE id = ?`, now, id)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("revoke key %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return KeyInfo{}, fmt.Errorf("revoke key %s: %w (see `synchub keys list`)", id, ErrKeyNotFound)
	}
	ki, _, err := k.byID(ctx, id)
	return ki, err
}

// RevokeEdge revokes every valid key of an edge and returns the keys it revoked.
func (k *Keys) RevokeEdge(ctx context.Context, edge string) ([]KeyInfo, error) {
	if edge == "" {
		return nil, errors.New("revoke keys: empty edge id")
	}
	tx, err := k.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("revoke keys of edge %s: %w", edge, err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT id FROM api_keys WHERE edge = ? AND revoked_us IS NULL ORDER BY created_us, id`, edge)
	if err != nil {
		return nil, fmt.Errorf("revoke keys of edge %s: %w", edge, err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if _, err := tx.ExecContext(ctx, `UPDATE api_keys SET revoked_us = ? WHERE edge = ? AND revoked_us IS NULL`, k.now().UTC().UnixMicro(), edge); err != nil {
		return nil, fmt.Errorf("revoke keys of edge %s: %w", edge, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("revoke keys of edge %s: %w", edge, err)
	}
	out := make([]KeyInfo, 0, len(ids))
	for _, id := range ids {
		ki, _, err := k.byID(ctx, id)
		if err != nil {
			return out, err
		}
		out = append(out, ki)
	}
	return out, nil
}

// Lookup returns the key whose text is key, with its signing secret ("" without
// one). A key no record has is a ReasonUnknownKey failure; a revoked one
// ReasonRevokedKey.
func (k *Keys) Lookup(ctx context.Context, key string) (KeyInfo, string, error) {
	h := hashKey(key)
	row := k.db.QueryRowContext(ctx, `SELECT id, edge, admin, role, claims, require_signing, created_us, revoked_us, signing_secret, hash
		FROM api_keys WHERE hash = ?`, h[:])
	var ki KeyInfo
	var secret string
	var stored []byte
	err := scanKeyWithHash(row, &ki, &secret, &stored)
	if errors.Is(err, sql.ErrNoRows) {
		return KeyInfo{}, "", unauthorized(ReasonUnknownKey, "the API key is not known to this hub; create one with `synchub keys create --edge NAME` and use the key it prints")
	}
	if err != nil {
		return KeyInfo{}, "", &Failure{Status: 503, Reason: ReasonUnavailable, Message: "the hub could not check the API key; retry later", Err: err}
	}
	if subtle.ConstantTimeCompare(stored, h[:]) != 1 {
		return KeyInfo{}, "", unauthorized(ReasonUnknownKey, "the API key is not known to this hub")
	}
	if !ki.Revoked.IsZero() {
		f := unauthorized(ReasonRevokedKey, "API key %s was revoked; create a new one with `synchub keys create`", ki.ID)
		f.Edge, f.Admin = ki.Edge, ki.Admin
		return KeyInfo{}, "", f
	}
	return ki, secret, nil
}

// SigningSecret returns the signing secret of the valid key with this id and the
// key's edge, for requests signed with a key id. ok is false when no valid key with a
// secret has the id.
func (k *Keys) SigningSecret(ctx context.Context, id string) (ki KeyInfo, secret string, ok bool, err error) {
	ki, secret, err = k.byID(ctx, id)
	if errors.Is(err, sql.ErrNoRows) {
		return KeyInfo{}, "", false, nil
	}
	if err != nil {
		return KeyInfo{}, "", false, err
	}
	if secret == "" || !ki.Revoked.IsZero() {
		return KeyInfo{}, "", false, nil
	}
	return ki, secret, true, nil
}

func (k *Keys) byID(ctx context.Context, id string) (KeyInfo, string, error) {
	row := k.db.QueryRowContext(ctx, `SELECT id, edge, admin, role, claims, require_signing, created_us, revoked_us, signing_secret
		FROM api_keys WHERE id = ?`, id)
	var ki KeyInfo
	var secret string
	if err := scanKey(row, &ki, &secret, true); err != nil {
		return KeyInfo{}, "", err
	}
	return ki, secret, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanKey(s scanner, ki *KeyInfo, secret *string, withSecret bool) error {
	var claims string
	var created int64
	var revoked sql.NullInt64
	dest := []any{&ki.ID, &ki.Edge, &ki.Admin, &ki.Role, &claims, &ki.Signing, &created, &revoked}
	if withSecret {
		dest = append(dest, secret)
	}
	if err := s.Scan(dest...); err != nil {
		return err
	}
	return fillKey(ki, claims, created, revoked)
}

func scanKeyWithHash(s scanner, ki *KeyInfo, secret *string, hash *[]byte) error {
	var claims string
	var created int64
	var revoked sql.NullInt64
	if err := s.Scan(&ki.ID, &ki.Edge, &ki.Admin, &ki.Role, &claims, &ki.Signing, &created, &revoked, secret, hash); err != nil {
		return err
	}
	return fillKey(ki, claims, created, revoked)
}

func fillKey(ki *KeyInfo, claims string, created int64, revoked sql.NullInt64) error {
	ki.Created = time.UnixMicro(created).UTC()
	if revoked.Valid {
		ki.Revoked = time.UnixMicro(revoked.Int64).UTC()
	}
	if err := json.Unmarshal([]byte(claims), &ki.Claims); err != nil {
		return fmt.Errorf("key %s: stored claims are not JSON: %w", ki.ID, err)
	}
	return nil
}

func hashKey(key string) [sha256.Size]byte { return sha256.Sum256([]byte(key)) }

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("read random bytes: %w", err)
	}
	return b, nil
}

// ParseClaims reads NAME=VALUE pairs (as `synchub keys create --claim` takes them): a
// value with commas becomes a list of strings, any other value a string.
func ParseClaims(pairs []string) (map[string]any, error) {
	out := map[string]any{}
	for _, p := range pairs {
		name, value, ok := strings.Cut(p, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("claim %q: write it as NAME=VALUE, e.g. store_id=7 or regions=eu,us", p)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("claim %q is given twice; give each claim once (lists as a=x,y)", name)
		}
		if strings.Contains(value, ",") {
			var list []any
			for _, v := range strings.Split(value, ",") {
				if v = strings.TrimSpace(v); v != "" {
					list = append(list, v)
				}
			}
			out[name] = list
			continue
		}
		out[name] = value
	}
	return out, nil
}
