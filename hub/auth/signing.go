package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Request-signing headers. A signed request carries the unix time in seconds it was
// signed at, the id of the key whose secret signed it, and the hex HMAC-SHA256 of
// StringToSign under that secret.
const (
	TimestampHeader = "X-Synchub-Timestamp"
	SignatureHeader = "X-Synchub-Signature"
	KeyIDHeader     = "X-Synchub-Key-Id"
)

// signingScheme opens the string to sign, so a signature made for synchub cannot be
// replayed against another protocol that signs similar fields.
const signingScheme = "SYNCHUB-HMAC-SHA256"

// StringToSign is what a request signature covers: the scheme, the method in upper
// case, the request target (path and query exactly as sent), the timestamp and the
// hex SHA-256 of the body exactly as sent (compressed, if it is sent compressed),
// joined by newlines.
func StringToSign(method, target, timestamp string, body []byte) string {
	sum := sha256.Sum256(body)
	return signingScheme + "\n" + strings.ToUpper(method) + "\n" + target + "\n" + timestamp + "\n" + hex.EncodeToString(sum[:])
}

// Sign returns the hex HMAC-SHA256 of StringToSign under secret.
func Sign(secret, method, target, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(StringToSign(method, target, timestamp, body)))
	return hex.EncodeToString(m.Sum(nil))
}

// SigningConfig governs request signatures.
type SigningConfig struct {
	// Required makes every edge request carry a valid signature; without it only
	// requests made with keys created with --signing must be signed.
	Required bool
	// Window is how far a request's timestamp may be from the hub's clock, either way.
	Window time.Duration
	// ReplayCacheSize bounds the signatures remembered to refuse replays; when it is
	// full, signed requests are refused (503) until old entries expire.
	ReplayCacheSize int
}

// DefaultSigningConfig returns a five-minute window and room for a million signatures.
func DefaultSigningConfig() SigningConfig {
	return SigningConfig{Window: 5 * time.Minute, ReplayCacheSize: 1 << 20}
}

// verifySignature checks r's signature with secret at now, and records it against
// replays. keyID names the key in messages.
func verifySignature(r Request, keyID, secret string, cfg SigningConfig, seen *replayCache, now time.Time) *Failure {
	ts := r.Header(TimestampHeader)
	sig := r.Header(SignatureHeader)
	if ts == "" || sig == "" {
		return unauthorized(ReasonMissingSignature, "request signature missing: key %s must sign its requests; send %s (unix seconds) and %s (hex HMAC-SHA256 of the string to sign, see README)", keyID, TimestampHeader, SignatureHeader)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return unauthorized(ReasonStaleTimestamp, "%s %q is not unix seconds; send the time of signing as an integer", TimestampHeader, ts)
	}
	skew := now.Sub(time.Unix(sec, 0))
	if skew < 0 {
		skew = -skew
	}
	if skew > cfg.Window {
		return unauthorized(ReasonStaleTimestamp, "request timestamp is %v away from the hub's clock, more than the allowed %v; sign each request when sending it and keep the edge's clock synchronised (NTP)", skew.Round(time.Second), cfg.Window)
	}
	want := Sign(secret, r.Method, r.Target, ts, r.Body)
	if !hmac.Equal([]byte(strings.ToLower(sig)), []byte(want)) {
		return unauthorized(ReasonBadSignature, "request signature does not match: sign the method, path with query, %s and SHA-256 of the body exactly as sent, with the signing secret of key %s", TimestampHeader, keyID)
	}
	switch seen.add(keyID+":"+want, now, cfg.Window) {
	case addReplayed:
		return unauthorized(ReasonReplayed, "this signed request was already received; sign every request anew (a new timestamp) and do not resend a signed request unchanged")
	case addFull:
		return &Failure{Status: 503, Reason: ReasonUnavailable, Message: "the hub is receiving more signed requests than it can remember against replays; retry shortly"}
	}
	return nil
}

// replayCache remembers the signatures seen within the window. Entries are kept in
// arrival order, and each expires two windows after it arrived: by then its timestamp
// is outside the window, so the request would be refused as stale anyway.
type replayCache struct {
	mu    sync.Mutex
	max   int
	seen  map[string]time.Time
	order []replayEntry
}

type replayEntry struct {
	key     string
	expires time.Time
}

type addResult uint8

const (
	addNew addResult = iota
	addReplayed
	addFull
)

func newReplayCache(max int) *replayCache {
	return &replayCache{max: max, seen: map[string]time.Time{}}
}

func (c *replayCache) add(key string, now time.Time, window time.Duration) addResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for n < len(c.order) && !c.order[n].expires.After(now) {
		delete(c.seen, c.order[n].key)
		n++
	}
	if n > 0 {
		c.order = append(c.order[:0], c.order[n:]...)
	}
	if exp, ok := c.seen[key]; ok && exp.After(now) {
		return addReplayed
	}
	if len(c.seen) >= c.max {
		return addFull
	}
	exp := now.Add(2 * window)
	c.seen[key] = exp
	c.order = append(c.order, replayEntry{key: key, expires: exp})
	return addNew
}
