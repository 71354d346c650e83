package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/edge"
	"github.com/synchub/synchub/hub/api"
	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/auth"
	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/push"
	"github.com/synchub/synchub/hub/syncproto"
)

// observer counts what an AuthObserver is told.
type observer struct {
	mu      sync.Mutex
	failed  map[string]int
	limited map[string]int
}

func newObserver() *observer { return &observer{failed: map[string]int{}, limited: map[string]int{}} }

func (o *observer) AuthFailed(reason string) {
	o.mu.Lock()
	o.failed[reason]++
	o.mu.Unlock()
}

func (o *observer) RateLimited(route string) {
	o.mu.Lock()
	o.limited[route]++
	o.mu.Unlock()
}

func (o *observer) counts() (failed, limited map[string]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f, l := map[string]int{}, map[string]int{}
	for k, v := range o.failed {
		f[k] = v
	}
	for k, v := range o.limited {
		l[k] = v
	}
	return f, l
}

// authEnv is an API with edge authentication (API keys and JWTs from a JWKS served on
// loopback), a push service, an audit log and an observer.
type authEnv struct {
	srv    *api.Server
	keys   *auth.Keys
	audit  *audit.SQLite
	obs    *observer
	store  *fakeStore
	signer *rsa.PrivateKey
	pubPEM []byte
}

type authEnvOpts struct {
	cfg     api.Config
	signing bool
	push    bool
	pcfg    push.Config
}

func newAuthEnv(t *testing.T, o authEnvOpts) *authEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	keys, err := auth.OpenKeys(ctx, filepath.Join(dir, "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "kid": "k1", "alg": "RS256",
			"n": base64.RawURLEncoding.EncodeToString(priv.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(priv.E)).Bytes()),
		}}})
	}))
	t.Cleanup(jwks.Close)
	acfg := auth.DefaultConfig()
	acfg.Methods = []string{auth.MethodAPIKey, auth.MethodJWT}
	acfg.JWT.JWKSURL = jwks.URL
	acfg.JWT.Issuer, acfg.JWT.Audience = "https://id.example", "synchub"
	acfg.Signing.Required = o.signing
	authn, err := auth.New(acfg, keys)
	if err != nil {
		t.Fatal(err)
	}
	al, err := audit.OpenSQLite(ctx, filepath.Join(dir, "audit.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	env := &authEnv{keys: keys, audit: al, obs: newObserver(), signer: priv,
		pubPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}
	deps := api.Deps{Auth: authn, AuthObserver: env.obs, Audit: al}
	if o.push {
		deps.Store, deps.Push = openPushService(t, al, o.pcfg)
	} else {
		env.store = newFakeStore(ordersTable)
		deps.Store = env.store
	}
	cfg := o.cfg
	if cfg.MaxPageChanges == 0 {
		cfg = api.DefaultConfig()
	}
	env.srv = newServer(t, cfg, deps)
	return env
}

// openPushService opens a change log holding order 7 and a push service over it
// that audits to al, like newPushEnv.
func openPushService(t *testing.T, al audit.Log, pcfg push.Config) (*changelog.SQLiteStore, *push.Service) {
	t.Helper()
	ctx := context.Background()
	scfg := changelog.DefaultSQLiteConfig()
	scfg.Path = filepath.Join(t.TempDir(), "changelog.db")
	store, err := changelog.OpenSQLite(ctx, scfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	b, err := store.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetTables([]cdc.Table{ordersTable}); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendTx(ctx, &cdc.Tx{Pos: testPos(1), CommitTime: time.Now().Add(-time.Hour), Changes: []cdc.Change{insertOrder(7, "server")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	db := &memApplier{rows: map[string]cdc.Row{}}
	db.rows[syncproto.KeyText(&ordersTable, insertOrder(7, "").After)] = insertOrder(7, "server").After
	pcfg.MetaPath = push.DefaultMetaPath(scfg.Path)
	svc, err := push.Open(ctx, pcfg, push.Deps{Store: store, Applier: db, Audit: al})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return store, svc
}

func (e *authEnv) key(t *testing.T, spec auth.KeySpec) *auth.CreatedKey {
	t.Helper()
	k, err := e.keys.Create(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (e *authEnv) token(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(e.signer)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claimsAt(now time.Time, sub string) jwt.MapClaims {
	return jwt.MapClaims{"sub": sub, "iss": "https://id.example", "aud": "synchub",
		"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Minute).Unix(), "region": "eu"}
}

// wantRefused checks a refusal's status, JSON code and that its message names reason's
// check (the audit/observer reason is checked separately).
func wantRefused(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	e := decodeError(t, resp, body)
	if e.Code != code {
		t.Fatalf("error code %q, want %q (%s)", e.Code, code, body)
	}
}

func bearer(cred string) []string { return []string{"Authorization", "Bearer " + cred} }

func TestAuth_EdgeCredentialChecks(t *testing.T) {
	env := newAuthEnv(t, authEnvOpts{})
	now := time.Now()
	key := env.key(t, auth.KeySpec{Edge: "till-1", Claims: map[string]any{"store_id": "7"}})
	revoked := env.key(t, auth.KeySpec{Edge: "till-2"})
	if _, err := env.keys.Revoke(context.Background(), revoked.ID); err != nil {
		t.Fatal(err)
	}
	with := func(k string, v any) jwt.MapClaims {
		c := claimsAt(now, "till-1")
		c[k] = v
		return c
	}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claimsAt(now, "till-1")).SignedString(jwt.UnsafeAllowNoneSignatureType)
	hsPub, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claimsAt(now, "till-1")).SignedString(env.pubPEM)
	unknownKID := jwt.NewWithClaims(jwt.SigningMethodRS256, claimsAt(now, "till-1"))
	unknownKID.Header["kid"] = "k-unknown"
	unknownKIDTok, _ := unknownKID.SignedString(env.signer)

	cases := []struct {
		name   string
		header []string
		reason auth.Reason
	}{
		{"missing", nil, auth.ReasonMissingCredentials},
		{"not bearer", []string{"Authorization", "Basic dXNlcjpwYXNz"}, auth.ReasonMalformed},
		{"malformed token", bearer("abc.def"), auth.ReasonMalformed},
		{"unknown API key", bearer(key.Key + "x"), auth.ReasonUnknownKey},
		{"revoked API key", bearer(revoked.Key), auth.ReasonRevokedKey},
		{"expired", bearer(env.token(t, with("exp", now.Add(-time.Hour).Unix()))), auth.ReasonExpired},
		{"not yet valid", bearer(env.token(t, with("nbf", now.Add(time.Hour).Unix()))), auth.ReasonNotYetValid},
		{"wrong audience", bearer(env.token(t, with("aud", "billing"))), auth.ReasonWrongAudience},
		{"wrong issuer", bearer(env.token(t, with("iss", "https://evil.example"))), auth.ReasonWrongIssuer},
		{"alg none", bearer(none), auth.ReasonBadAlgorithm},
		{"HS256 signed with the public key", bearer(hsPub), auth.ReasonBadAlgorithm},
		{"unknown kid", bearer(unknownKIDTok), auth.ReasonUnknownKID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, _ := env.obs.counts()
			for _, target := range []string{"/v1/schema", "/v1/status", "/v1/changes?since=0"} {
				resp, body := get(t, env.srv, target, c.header...)
				wantRefused(t, resp, body, 401, "unauthorized")
				if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("401 without WWW-Authenticate: %v", resp.Header)
				}
			}
			resp, body := post(t, env.srv, "/v1/push", pushBody("b1", orderInsert(1, 1, "x")), c.header...)
			wantRefused(t, resp, body, 401, "unauthorized")
			failed, _ := env.obs.counts()
			if failed[string(c.reason)]-before[string(c.reason)] != 4 {
				t.Fatalf("observer saw %v, want 4 × %s", failed, c.reason)
			}
		})
	}

	// Valid credentials pass, and open routes need none.
	for _, h := range [][]string{bearer(key.Key), bearer(env.token(t, claimsAt(now, "till-1")))} {
		if resp, body := get(t, env.srv, "/v1/schema", h...); resp.StatusCode != 200 {
			t.Fatalf("valid credential: %d %s", resp.StatusCode, body)
		}
	}
	for _, target := range []string{"/healthz", "/readyz"} {
		if resp, body := get(t, env.srv, target); resp.StatusCode != 200 {
			t.Fatalf("%s without credentials: %d %s", target, resp.StatusCode, body)
		}
	}
}

func TestAuth_FailuresAreAudited(t *testing.T) {
	env := newAuthEnv(t, authEnvOpts{})
	key := env.key(t, auth.KeySpec{Edge: "till-1"})
	if _, err := env.keys.Revoke(context.Background(), key.ID); err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, env.srv, "/v1/schema", bearer(key.Key)...)
	wantRefused(t, resp, body, 401, "unauthorized")
	resp, body = get(t, env.srv, "/v1/schema", bearer("shk_guessed")...)
	wantRefused(t, resp, body, 401, "unauthorized")

	evs, err := env.audit.Query(context.Background(), audit.Filter{Action: audit.ActionAuthFailure, AfterID: 0, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("%d auth_failure events, want 2: %+v", len(evs), evs)
	}
	// Newest first: the guessed key, then the revoked one.
	if evs[1].Actor != audit.EdgeActor("till-1") || evs[1].Edge != "till-1" || !strings.HasPrefix(evs[1].Detail, string(auth.ReasonRevokedKey)) || evs[1].Outcome != "401" {
		t.Fatalf("revoked-key event: %+v", evs[1])
	}
	if evs[0].Actor != audit.ActorSystem || !strings.HasPrefix(evs[0].Detail, string(auth.ReasonUnknownKey)) {
		t.Fatalf("unknown-key event: %+v", evs[0])
	}
	for _, ev := range evs {
		if strings.Contains(ev.Detail, key.Key) || strings.Contains(ev.Detail, "shk_guessed") {
			t.Fatalf("audit detail contains the credential: %s", ev.Detail)
		}
	}
}

func TestAuth_AdminRoles(t *testing.T) {
	env := newAuthEnv(t, authEnvOpts{push: true, pcfg: noWaitConfig()})
	viewer := env.key(t, auth.KeySpec{Admin: "vera", Role: auth.RoleViewer})
	operator := env.key(t, auth.KeySpec{Admin: "otto", Role: auth.RoleOperator})
	edgeKey := env.key(t, auth.KeySpec{Edge: "till-1"})
	resolve := []byte(`{"action":"keep_server","actor":"vera"}`)

	resp, body := get(t, env.srv, "/v1/conflicts")
	wantRefused(t, resp, body, 401, "unauthorized")
	for _, target := range []string{"/v1/conflicts", "/v1/rejected", "/v1/audit"} {
		if resp, body := get(t, env.srv, target, bearer(viewer.Key)...); resp.StatusCode != 200 {
			t.Fatalf("viewer GET %s: %d %s", target, resp.StatusCode, body)
		}
	}
	resp, body = post(t, env.srv, "/v1/conflicts/1/resolve", resolve, bearer(viewer.Key)...)
	wantRefused(t, resp, body, 403, "forbidden")
	resp, body = post(t, env.srv, "/v1/rejected/1/discard", []byte(`{"actor":"vera"}`), bearer(viewer.Key)...)
	wantRefused(t, resp, body, 403, "forbidden")
	resp, body = get(t, env.srv, "/v1/conflicts", bearer(edgeKey.Key)...)
	wantRefused(t, resp, body, 403, "forbidden")
	resp, body = get(t, env.srv, "/v1/schema", bearer(operator.Key)...)
	wantRefused(t, resp, body, 403, "forbidden")

	// An operator passes authorisation; conflict 1 does not exist.
	resp, body = post(t, env.srv, "/v1/conflicts/1/resolve", resolve, bearer(operator.Key)...)
	if resp.StatusCode == 401 || resp.StatusCode == 403 {
		t.Fatalf("operator refused: %d %s", resp.StatusCode, body)
	}
	failed, _ := env.obs.counts()
	if failed[string(auth.ReasonWrongRole)] != 2 || failed[string(auth.ReasonNotAdmin)] != 1 || failed[string(auth.ReasonNotEdge)] != 1 {
		t.Fatalf("observer: %v", failed)
	}
}

func TestAuth_PushEdgeFromIdentity(t *testing.T) {
	env := newAuthEnv(t, authEnvOpts{push: true, pcfg: noWaitConfig()})
	key := env.key(t, auth.KeySpec{Edge: "till-1"})

	// pushBody names till-1; as till-9 the batch is refused.
	other := env.key(t, auth.KeySpec{Edge: "till-9"})
	resp, body := post(t, env.srv, "/v1/push", pushBody("b1", orderInsert(1, 1, "x")), bearer(other.Key)...)
	wantRefused(t, resp, body, 403, "forbidden")
	failed, _ := env.obs.counts()
	if failed[string(auth.ReasonWrongEdge)] != 1 {
		t.Fatalf("observer: %v", failed)
	}

	resp, body = post(t, env.srv, "/v1/push", pushBody("b1", orderInsert(1, 1, "x")), bearer(key.Key)...)
	if resp.StatusCode != 200 {
		t.Fatalf("own push: %d %s", resp.StatusCode, body)
	}
	// A batch without "edge" is the caller's.
	noEdge := bytes.Replace(pushBody("b2", orderInsert(2, 2, "y")), []byte(`"edge":"till-1",`), nil, 1)
	if bytes.Contains(noEdge, []byte(`"edge"`)) {
		t.Fatal("test body still names an edge")
	}
	resp, body = post(t, env.srv, "/v1/push", noEdge, bearer(key.Key)...)
	if resp.StatusCode != 200 {
		t.Fatalf("push without edge: %d %s", resp.StatusCode, body)
	}
	evs, err := env.audit.Query(context.Background(), audit.Filter{Action: audit.ActionPush, Edge: "till-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("%d push events for till-1, want 2 (the second from the identity): %+v", len(evs), evs)
	}
}

// signedDo sends a request through the app, signed by edge.SignRequest at "at".
func signedDo(t *testing.T, s *api.Server, method, target string, body []byte, key *auth.CreatedKey, secret string, at time.Time) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	edge.Authorize(req, key.Key, "")
	edge.SignRequest(req, body, key.ID, secret, at)
	return do(t, s, req)
}

func TestAuth_RequestSigning(t *testing.T) {
	env := newAuthEnv(t, authEnvOpts{push: true, pcfg: noWaitConfig()})
	key := env.key(t, auth.KeySpec{Edge: "till-1", Signing: true})
	now := time.Now()
	body := pushBody("b1", orderInsert(1, 1, "x"))

	resp, rb := signedDo(t, env.srv, "POST", "/v1/push", body, key, key.SigningSecret, now)
	if resp.StatusCode != 200 {
		t.Fatalf("signed push: %d %s", resp.StatusCode, rb)
	}
	resp, rb = signedDo(t, env.srv, "GET", "/v1/changes?since=0&limit=10", nil, key, key.SigningSecret, now)
	if resp.StatusCode != 200 {
		t.Fatalf("signed pull: %d %s", resp.StatusCode, rb)
	}
	cases := []struct {
		name    string
		send    func() (*http.Response, []byte)
		reason  auth.Reason
		message string
	}{
		{"replayed", func() (*http.Response, []byte) {
			return signedDo(t, env.srv, "POST", "/v1/push", body, key, key.SigningSecret, now)
		}, auth.ReasonReplayed, "already received"},
		{"wrong signature", func() (*http.Response, []byte) {
			return signedDo(t, env.srv, "POST", "/v1/push", body, key, "shs_not-the-secret", now.Add(time.Second))
		}, auth.ReasonBadSignature, "does not match"},
		{"stale timestamp", func() (*http.Response, []byte) {
			return signedDo(t, env.srv, "POST", "/v1/push", body, key, key.SigningSecret, now.Add(-10*time.Minute))
		}, auth.ReasonStaleTimestamp, "timestamp"},
		{"missing signature", func() (*http.Response, []byte) {
			return post(t, env.srv, "/v1/push", body, bearer(key.Key)...)
		}, auth.ReasonMissingSignature, "signature missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, rb := c.send()
			wantRefused(t, resp, rb, 401, "unauthorized")
			if e := decodeError(t, resp, rb); !strings.Contains(e.Message, c.message) {
				t.Fatalf("message %q does not name the check (%q)", e.Message, c.message)
			}
			failed, _ := env.obs.counts()
			if failed[string(c.reason)] != 1 {
				t.Fatalf("observer: %v, want one %s", failed, c.reason)
			}
		})
	}
}

func TestAuth_NoEdgeAuthServesLoopbackOnly(t *testing.T) {
	s := newServer(t, api.DefaultConfig(), api.Deps{Store: newFakeStore(ordersTable)})
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	err = s.Serve(context.Background(), ln)
	if err == nil || !strings.Contains(err.Error(), "auth.methods") {
		t.Fatalf("Serve on 0.0.0.0 without edge authentication: %v, want a refusal naming auth.methods", err)
	}

	for addr, ok := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:8080": true, "localhost:8080": true, "127.0.0.2:1": true,
		"0.0.0.0:8080": false, ":8080": false, "10.1.2.3:8080": false, "[::]:8080": false, "hub.example:80": false,
	} {
		err := api.CheckListen(addr, false)
		if (err == nil) != ok {
			t.Errorf("CheckListen(%q, no auth) = %v, want ok %v", addr, err, ok)
		}
		if err := api.CheckListen(addr, true); err != nil {
			t.Errorf("CheckListen(%q, with auth) = %v", addr, err)
		}
	}

	// On loopback without authentication, the edge names itself and admin routes are open.
	resp, body := get(t, s, "/v1/schema", auth.EdgeHeader, "till-3")
	if resp.StatusCode != 200 {
		t.Fatalf("schema without auth: %d %s", resp.StatusCode, body)
	}
	if resp, body := get(t, s, "/v1/conflicts"); resp.StatusCode == 401 || resp.StatusCode == 403 {
		t.Fatalf("admin route without auth: %d %s", resp.StatusCode, body)
	}
}
