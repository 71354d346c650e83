package edge

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

// maxBody bounds a response body the agent will read.
const maxBody = 1 << 30

// HubError is an error response from the hub.
type HubError struct {
	Status  int    // HTTP status
	Code    string // the hub's error code, e.g. "watermark_too_old"
	Message string // the hub's explanation
	Horizon int64  // for watermark_too_old: the oldest watermark the hub serves
}

func (e *HubError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("hub answered HTTP %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("hub answered HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// Retryable reports whether the same request may succeed later.
func (e *HubError) Retryable() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout
}

// mustRebootstrap reports whether the hub says the edge's data cannot be continued:
// its watermark is older than the hub's horizon (410) or ahead of the hub's log (409).
func (e *HubError) mustRebootstrap() bool {
	return e.Status == http.StatusGone || e.Code == "watermark_too_old" || e.Code == "watermark_ahead"
}

// hubClient speaks the sync API.
type hubClient struct {
	base      string // HubURL without a trailing slash
	http      *http.Client
	edgeID    string
	limit     int
	reqTimout time.Duration
	apiKey    string
	token     string
	scopeOut  string // fingerprint sent with page requests (see Agent.scope)
	scopeIn   string // fingerprint the hub sent with the last page
	keyID     string
	secret    string
	body      bytes.Buffer
	gz        *gzip.Reader
	pg        page // the last page, reused
	// pushAfter is set once a push response carried pushAfterHeader: the hub writes a
	// batch only after the one its PushRequest.After names, so batches may be pipelined.
	// It is never reset.
	pushAfter atomic.Bool
}

func newHubClient(cfg Config) (*hubClient, error) {
	hc := cfg.HTTPClient
	if hc == nil && cfg.CAFile != "" {
		var err error
		if hc, err = NewHTTPClient(TLSConfig{CAFile: cfg.CAFile}, cfg.Wait+cfg.RequestTimeout); err != nil {
			return nil, err
		}
	}
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          4,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: cfg.Wait + cfg.RequestTimeout,
			ForceAttemptHTTP2:     true,
		}}
	}
	return &hubClient{base: strings.TrimRight(cfg.HubURL, "/"), http: hc, edgeID: cfg.EdgeID, limit: cfg.PageLimit, reqTimout: cfg.RequestTimeout,
		apiKey: cfg.APIKey, token: cfg.Token, keyID: cfg.SigningKeyID, secret: cfg.SigningSecret}, nil
}

// authorize adds the edge's credentials (and signature) to a request; body is exactly
// what is sent. A signature is single-use: a retried request is signed again.
func (c *hubClient) authorize(req *http.Request, body []byte) {
	req.Header.Set("X-Synchub-Edge", c.edgeID)
	Authorize(req, c.apiKey, c.token)
	if c.secret != "" {
		SignRequest(req, body, c.keyID, c.secret, time.Now())
	}
}

// get fetches target into body, decompressed. Answers other than 200 become *HubError.
func (c *hubClient) get(ctx context.Context, target string, timeout time.Duration, body *bytes.Buffer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("build request for %s: %w", target, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("User-Agent", "synchub-edge")
	c.authorize(req, nil)
	if c.scopeOut != "" {
		req.Header.Set(scopeHeader, c.scopeOut)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("request %s: %w", target, err)
	}
	defer resp.Body.Close()
	if v := resp.Header.Get(scopeHeader); v != "" {
		c.scopeIn = v
	}
	var r io.Reader = resp.Body
	if strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		if c.gz == nil {
			c.gz, err = gzip.NewReader(resp.Body)
		} else {
			err = c.gz.Reset(resp.Body)
		}
		if err != nil {
			return fmt.Errorf("read %s: gzip: %w", target, err)
		}
		r = c.gz
	}
	body.Reset()
	if resp.ContentLength > 0 && resp.ContentLength < maxBody {
		body.Grow(int(resp.ContentLength))
	}
	if _, err := body.ReadFrom(io.LimitReader(r, maxBody)); err != nil {
		return fmt.Errorf("read %s: %w", target, err)
	}
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	he := &HubError{Status: resp.StatusCode}
	var e syncproto.Error
	if json.Unmarshal(body.Bytes(), &e) == nil && e.Code != "" {
		he.Code, he.Message, he.Horizon = e.Code, e.Message, e.Horizon
	} else {
		he.Message = strings.TrimSpace(string(body.Bytes()[:min(body.Len(), 200)]))
		if he.Message == "" {
			he.Message = http.StatusText(resp.StatusCode)
		}
	}
	return he
}

// schema fetches GET /v1/schema.
func (c *hubClient) schema(ctx context.Context) (*cdc.Schema, error) {
	var body bytes.Buffer
	if err := c.get(ctx, c.base+"/v1/schema", c.reqTimout, &body); err != nil {
		return nil, fmt.Errorf("fetch schema: %w", err)
	}
	var sr syncproto.SchemaResponse
	if err := json.Unmarshal(body.Bytes(), &sr); err != nil {
		return nil, fmt.Errorf("fetch schema: decode the hub's answer: %w", err)
	}
	return &cdc.Schema{Version: sr.Version, Tables: sr.Tables}, nil
}

// scopeHeader carries the fingerprint of the rows an edge may see (hub/api.ScopeHeader).
const scopeHeader = "X-Synchub-Scope"

// page fetches one page of changes. The returned page aliases c.body and is reused:
// it is valid until the next call of page. scope is the fingerprint the edge's data
// was pulled with ("" when it has none); the hub answers 410 when it no longer matches.
func (c *hubClient) page(ctx context.Context, since int64, cursor, scope string, wait time.Duration) (*page, error) {
	c.scopeOut = scope
	defer func() { c.scopeOut = "" }()
	q := url.Values{}
	q.Set("since", strconv.FormatInt(since, 10))
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	q.Set("limit", strconv.Itoa(c.limit))
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	if err := c.get(ctx, c.base+"/v1/changes?"+q.Encode(), wait+c.reqTimout, &c.body); err != nil {
		return nil, fmt.Errorf("fetch changes since %d: %w", since, err)
	}
	p := &c.pg
	if err := decodePage(c.body.Bytes(), p); err != nil {
		return nil, fmt.Errorf("fetch changes since %d: %w", since, err)
	}
	if p.Since != since {
		return nil, fmt.Errorf("fetch changes since %d: the hub answered a page since %d", since, p.Since)
	}
	return p, nil
}

var errNoCursor = errors.New("the hub sent a page without commit and without a cursor to continue it")

// pushAfterHeader is set to "1" on every /v1/push answer of a hub that honours
// PushRequest.After. An older hub ignores After and may write batches that arrive
// together out of order, so the agent sends one batch at a time until it has seen the
// header, and again after a successful answer without it (a hub rolled back, or a mix
// of hub versions behind a load balancer).
const pushAfterHeader = syncproto.HeaderPushAfter

// gzipPushOver is the request size above which a push body is gzip-compressed.
const gzipPushOver = 8 << 10

// push sends one batch with POST /v1/push. Answers other than 200 become *HubError.
func (c *hubClient) push(ctx context.Context, req *syncproto.PushRequest) (*syncproto.PushResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("push batch %s: encode: %w", req.BatchID, err)
	}
	gz := len(body) > gzipPushOver
	if gz {
		var zb bytes.Buffer
		// BestSpeed: a batch's JSON repeats its column names and compresses well at
		// the lowest level, at about half the CPU of the default one.
		zw, err := gzip.NewWriterLevel(&zb, gzip.BestSpeed)
		if err != nil {
			return nil, fmt.Errorf("push batch %s: gzip: %w", req.BatchID, err)
		}
		if _, err := zw.Write(body); err != nil {
			return nil, fmt.Errorf("push batch %s: gzip: %w", req.BatchID, err)
		}
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("push batch %s: gzip: %w", req.BatchID, err)
		}
		body = zb.Bytes()
	}
	ctx, cancel := context.WithTimeout(ctx, c.reqTimout)
	defer cancel()
	target := c.base + "/v1/push"
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request for %s: %w", target, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if gz {
		hreq.Header.Set("Content-Encoding", "gzip")
	}
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("Accept-Encoding", "gzip")
	hreq.Header.Set("User-Agent", "synchub-edge")
	c.authorize(hreq, body)
	resp, err := c.http.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("push batch %s: %w", req.BatchID, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.Header.Get(pushAfterHeader) == "1":
		c.pushAfter.Store(true)
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		// Only the hub's own handler answers 2xx; an error from a proxy in between
		// says nothing about the hub.
		c.pushAfter.Store(false)
	}
	var r io.Reader = resp.Body
	if strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("push batch %s: read the answer: gzip: %w", req.BatchID, err)
		}
		r = zr
	}
	rb, err := io.ReadAll(io.LimitReader(r, maxBody))
	if err != nil {
		return nil, fmt.Errorf("push batch %s: read the answer: %w", req.BatchID, err)
	}
	if resp.StatusCode != http.StatusOK {
		he := &HubError{Status: resp.StatusCode}
		var e syncproto.Error
		if json.Unmarshal(rb, &e) == nil && e.Code != "" {
			he.Code, he.Message = e.Code, e.Message
		} else {
			he.Message = strings.TrimSpace(string(rb[:min(len(rb), 200)]))
			if he.Message == "" {
				he.Message = http.StatusText(resp.StatusCode)
			}
		}
		return nil, fmt.Errorf("push batch %s: %w", req.BatchID, he)
	}
	var pr syncproto.PushResponse
	if err := json.Unmarshal(rb, &pr); err != nil {
		return nil, fmt.Errorf("push batch %s: decode the hub's answer: %w", req.BatchID, err)
	}
	return &pr, nil
}
