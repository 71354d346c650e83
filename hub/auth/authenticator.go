package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Config says how edges authenticate. Admins always use admin API keys from the key
// database.
type Config struct {
	// Methods are the edge credentials accepted: MethodAPIKey, MethodJWT, or both.
	// Empty means no edge authentication: the hub then serves only on loopback.
	Methods []string
	// JWT configures token verification; used when Methods has MethodJWT.
	JWT JWTConfig
	// Signing governs request signatures.
	Signing SigningConfig
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// DefaultConfig returns no edge methods, the JWT defaults and the signing defaults.
func DefaultConfig() Config {
	return Config{JWT: DefaultJWTConfig(), Signing: DefaultSigningConfig()}
}

// Validate says what is wrong with the configuration and how to fix it.
func (c Config) Validate() error {
	for _, m := range c.Methods {
		if m != MethodAPIKey && m != MethodJWT {
			return fmt.Errorf("auth.methods: %q is not a method; use api_key, jwt or both", m)
		}
	}
	if slices.Contains(c.Methods, MethodJWT) {
		if err := c.JWT.Validate(); err != nil {
			return err
		}
	}
	if c.Signing.Window <= 0 || c.Signing.Window > time.Hour {
		return fmt.Errorf("auth.signing.window: %v; use a positive duration up to 1h such as 5m", c.Signing.Window)
	}
	if c.Signing.ReplayCacheSize < 1 {
		return fmt.Errorf("auth.signing.replay_cache_size: %d; must be at least 1", c.Signing.ReplayCacheSize)
	}
	if c.Signing.Required && len(c.Methods) == 0 {
		return errors.New("auth.signing.required needs edge authentication: set auth.methods to api_key and/or jwt")
	}
	return nil
}

// Request is what the authenticator reads of an HTTP request. Header returns a
// header's value ("" when absent); Body is the body exactly as sent.
type Request struct {
	Method string
	Target string // path and query exactly as sent
	Header func(name string) string
	Body   []byte
}

// Authenticator checks edge and admin credentials. It is safe for concurrent use.
type Authenticator struct {
	cfg    Config
	keys   *Keys
	jwt    *jwtVerifier
	replay *replayCache
	now    func() time.Time
}

// New builds an Authenticator over the key database (which it does not close).
func New(cfg Config, keys *Keys) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if keys == nil {
		return nil, errors.New("auth: the key database is required (admin keys and signing secrets live there); set auth.keys_path")
	}
	a := &Authenticator{cfg: cfg, keys: keys, now: cfg.Now, replay: newReplayCache(cfg.Signing.ReplayCacheSize)}
	if a.now == nil {
		a.now = time.Now
	}
	if slices.Contains(cfg.Methods, MethodJWT) {
		v, err := newJWTVerifier(cfg.JWT, a.now)
		if err != nil {
			return nil, err
		}
		a.jwt = v
	}
	return a, nil
}

// Keys returns the key database the Authenticator checks keys against (nil for a nil
// Authenticator), for listing and revoking keys in the dashboard.
func (a *Authenticator) Keys() *Keys {
	if a == nil {
		return nil
	}
	return a.keys
}

// EdgeAuthConfigured reports whether edges must authenticate.
func (a *Authenticator) EdgeAuthConfigured() bool { return a != nil && len(a.cfg.Methods) > 0 }

// Methods returns the configured edge methods, for logs.
func (a *Authenticator) Methods() []string { return slices.Clone(a.cfg.Methods) }

// bearer returns the credential of "Authorization: Bearer <credential>".
func bearer(r Request) (string, *Failure) {
	h := strings.TrimSpace(r.Header("Authorization"))
	if h == "" {
		return "", unauthorized(ReasonMissingCredentials, "no credentials: send \"Authorization: Bearer <API key or JWT>\"")
	}
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(cred) == "" {
		return "", unauthorized(ReasonMalformed, "the Authorization header is not \"Bearer <credential>\"; send \"Authorization: Bearer <API key or JWT>\"")
	}
	return strings.TrimSpace(cred), nil
}

// Edge authenticates an edge request. The error is always a *Failure.
func (a *Authenticator) Edge(ctx context.Context, r Request) (*Identity, error) {
	if !a.EdgeAuthConfigured() {
		return nil, errors.New("auth: no edge authentication configured")
	}
	cred, f := bearer(r)
	if f != nil {
		return nil, f
	}
	if strings.HasPrefix(cred, KeyPrefix) {
		if !slices.Contains(a.cfg.Methods, MethodAPIKey) {
			return nil, unauthorized(ReasonMethodDisabled, "API keys are not accepted for edges on this hub (auth.methods); send a JWT")
		}
		ki, secret, err := a.keys.Lookup(ctx, cred)
		if err != nil {
			return nil, err
		}
		if ki.Edge == "" {
			return nil, withWho(forbidden(ReasonNotEdge, "this is an admin key (%s); edges need an edge key from `synchub keys create --edge NAME`", ki.ID), ki)
		}
		id := &Identity{Edge: ki.Edge, Claims: ki.Claims, Method: MethodAPIKey}
		if secret != "" || a.cfg.Signing.Required || r.Header(SignatureHeader) != "" {
			if secret == "" {
				return nil, withWho(unauthorized(ReasonMissingSignature, "request signing is required, but key %s has no signing secret; create a key with `synchub keys create --edge %s --signing`", ki.ID, ki.Edge), ki)
			}
			if kid := r.Header(KeyIDHeader); kid != "" && kid != ki.ID {
				return nil, withWho(unauthorized(ReasonBadSignature, "%s names key %q but the request authenticates with key %s; sign with the secret of the key you send", KeyIDHeader, kid, ki.ID), ki)
			}
			if f := verifySignature(r, ki.ID, secret, a.cfg.Signing, a.replay, a.now()); f != nil {
				return nil, withWho(f, ki)
			}
		}
		return id, nil
	}
	if !slices.Contains(a.cfg.Methods, MethodJWT) {
		return nil, unauthorized(ReasonMethodDisabled, "JWTs are not accepted for edges on this hub (auth.methods); send an API key (shk_…)")
	}
	id, f := a.jwt.verify(ctx, cred)
	if f != nil {
		return nil, f
	}
	if f := a.jwtSignature(ctx, r, id); f != nil {
		f.Edge = id.Edge
		return nil, f
	}
	return id, nil
}

// jwtSignature checks the signature of a request authenticated by a JWT: it names its
// signing key with KeyIDHeader, a key of the same edge created with --signing.
func (a *Authenticator) jwtSignature(ctx context.Context, r Request, id *Identity) *Failure {
	kid := r.Header(KeyIDHeader)
	if kid == "" {
		if a.cfg.Signing.Required || r.Header(SignatureHeader) != "" {
			return unauthorized(ReasonMissingSignature, "request signature missing: send %s naming a signing key of edge %s (`synchub keys create --edge %s --signing`), with %s and %s", KeyIDHeader, id.Edge, id.Edge, TimestampHeader, SignatureHeader)
		}
		return nil
	}
	ki, secret, ok, err := a.keys.SigningSecret(ctx, kid)
	if err != nil {
		return &Failure{Status: 503, Reason: ReasonUnavailable, Message: "the hub could not read the signing key; retry later", Err: err}
	}
	if !ok || ki.Edge != id.Edge {
		return unauthorized(ReasonBadSignature, "%s %q is not a valid signing key of edge %s", KeyIDHeader, kid, id.Edge)
	}
	return verifySignature(r, ki.ID, secret, a.cfg.Signing, a.replay, a.now())
}

// Admin authenticates an admin request that needs role (RoleViewer or RoleOperator).
// Admins authenticate with admin API keys. The error is always a *Failure.
func (a *Authenticator) Admin(ctx context.Context, r Request, role string) (*Identity, error) {
	cred, f := bearer(r)
	if f != nil {
		return nil, f
	}
	if !strings.HasPrefix(cred, KeyPrefix) {
		return nil, unauthorized(ReasonMalformed, "admin routes take an admin API key (shk_…); create one with `synchub keys create --admin NAME --role viewer|operator`")
	}
	ki, secret, err := a.keys.Lookup(ctx, cred)
	if err != nil {
		return nil, err
	}
	if ki.Admin == "" {
		return nil, withWho(forbidden(ReasonNotAdmin, "this is an edge key (%s); admin routes need an admin key from `synchub keys create --admin NAME --role viewer|operator`", ki.ID), ki)
	}
	if !RoleAllows(ki.Role, role) {
		return nil, withWho(forbidden(ReasonWrongRole, "admin %s has role %s; this action needs role %s", ki.Admin, ki.Role, role), ki)
	}
	if secret != "" {
		if f := verifySignature(r, ki.ID, secret, a.cfg.Signing, a.replay, a.now()); f != nil {
			return nil, withWho(f, ki)
		}
	}
	return &Identity{Admin: ki.Admin, Role: ki.Role, Claims: ki.Claims, Method: MethodAPIKey}, nil
}

func withWho(f *Failure, ki KeyInfo) *Failure {
	f.Edge, f.Admin = ki.Edge, ki.Admin
	return f
}
