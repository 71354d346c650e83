package edge

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/synchub/synchub/metrics"
)

// Config configures an Agent.
type Config struct {
	// HubURL is the base URL of the hub's sync API, e.g. "http://hub:8080".
	HubURL string
	// DBPath is the local SQLite database file; it is created when missing.
	DBPath string
	// EdgeID identifies this edge to the hub (letters, digits, '-', '_', '.', ':').
	EdgeID string
	// PageLimit is the most changes asked for per page (1..10000).
	PageLimit int
	// Wait is the long-poll wait Run asks the hub for when caught up (0..120s); it must
	// not exceed the hub's max_wait.
	Wait time.Duration
	// RequestTimeout bounds one HTTP request, on top of Wait.
	RequestTimeout time.Duration
	// HTTPClient sends requests to the hub; nil uses a client with sensible timeouts
	// (verifying the hub's certificate against CAFile when set).
	HTTPClient *http.Client
	// APIKey is the edge's key from `synchub keys create --edge ID`, sent as a Bearer
	// credential. Token is a JWT, used when APIKey is empty.
	APIKey string
	Token  string
	// SigningKeyID and SigningSecret sign every request (HMAC over method, path,
	// timestamp and body) for keys created with --signing; set both or neither.
	SigningKeyID  string
	SigningSecret string
	// CAFile is a PEM bundle of the authorities that may sign the hub's certificate
	// (a private CA); empty uses the system's roots.
	CAFile string
	// BackoffMin and BackoffMax bound the capped exponential backoff (with jitter)
	// between failed pulls in Run.
	BackoffMin time.Duration
	BackoffMax time.Duration
	// ErrorLogInterval is the least time between two logs of repeated pull errors.
	ErrorLogInterval time.Duration
	// BusyTimeout is how long a local statement waits for a lock held by another
	// connection (the application's) before failing.
	BusyTimeout time.Duration
	// PushBatch is the most changes sent in one push (1..10000); the hub accepts at most
	// its push.max_batch_changes (1000 by default) per batch.
	PushBatch int
	// PushPipeline is how many batches may be on their way to the hub at once (1..16).
	// With more than one, the agent sends the next batch while the hub still works on
	// the previous one (each names the one it follows, and the hub writes them in that
	// order); 1 waits for each answer before sending the next batch. The agent
	// pipelines only once a push response from the hub carried the header
	// X-Synchub-Push-After: 1 (older hubs do not keep pipelined batches in order), and
	// sends one batch at a time until then. With any setting, the next batch is formed
	// while the hub works on the ones sent.
	PushPipeline int
	// PushInterval is how often Run looks for local writes to push (more than 0).
	PushInterval time.Duration
	// OnConflict, when set, is called after a push answer that resolved a conflict or
	// rejected a change has been applied locally. It runs on the pushing goroutine and
	// must not call the Agent's methods that push or pull.
	OnConflict func(ConflictEvent)
	// Metrics, when set, receives the agent's pull and push figures (see
	// metrics.NewEdge).
	Metrics *metrics.Edge
	// ClockSkew is added to the local wall clock wherever the agent reads it for the hub
	// (HLC stamps of local writes and a push's sent_at), as if the edge's clock ran that
	// far ahead (or behind, when negative). It exists to test the hub's skew handling;
	// leave it 0.
	ClockSkew time.Duration
	// Tables, when not empty, limits syncing to these captured tables, named as in the
	// hub's schema ("public.orders") or by their local name ("orders").
	Tables []string
}

// DefaultConfig returns a Config with every field but HubURL and DBPath set; EdgeID
// is derived from the host name.
func DefaultConfig() Config {
	return Config{
		EdgeID:           defaultEdgeID(),
		PageLimit:        1000,
		Wait:             30 * time.Second,
		RequestTimeout:   30 * time.Second,
		BackoffMin:       500 * time.Millisecond,
		BackoffMax:       30 * time.Second,
		ErrorLogInterval: time.Minute,
		BusyTimeout:      5 * time.Second,
		PushBatch:        1000,
		PushPipeline:     3,
		PushInterval:     time.Second,
	}
}

func defaultEdgeID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "edge"
	}
	var b strings.Builder
	for _, r := range h {
		if validEdgeIDRune(r) {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "edge"
	}
	return b.String()
}

func validEdgeIDRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:", r)
}

// Validate checks every field and says how to fix the first bad one.
func (c Config) Validate() error {
	if c.HubURL == "" {
		return fmt.Errorf("edge config: hub_url is empty; set the hub's sync API URL, e.g. http://127.0.0.1:8080")
	}
	u, err := url.Parse(c.HubURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("edge config: hub_url %q is not an http(s) URL with a host; set e.g. http://127.0.0.1:8080", c.HubURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("edge config: hub_url %q has a query or fragment; give the base URL only", c.HubURL)
	}
	if (c.SigningKeyID == "") != (c.SigningSecret == "") {
		return fmt.Errorf("edge config: signing_key_id and signing_secret go together; set both (from `synchub keys create --signing`) or neither")
	}
	if c.CAFile != "" && c.HTTPClient != nil {
		return fmt.Errorf("edge config: ca_file and a custom HTTPClient exclude each other; configure the CA in the client")
	}
	if c.DBPath == "" {
		return fmt.Errorf("edge config: db_path is empty; set the local SQLite file, e.g. edge.db")
	}
	if c.EdgeID == "" || len(c.EdgeID) > 128 {
		return fmt.Errorf("edge config: edge_id %q must be 1 to 128 characters", c.EdgeID)
	}
	for _, r := range c.EdgeID {
		if !validEdgeIDRune(r) {
			return fmt.Errorf("edge config: edge_id %q contains %q; use letters, digits, '-', '_', '.' and ':'", c.EdgeID, r)
		}
	}
	switch {
	case c.PageLimit < 1 || c.PageLimit > 10000:
		return fmt.Errorf("edge config: page_limit is %d; set it between 1 and 10000", c.PageLimit)
	case c.Wait < 0 || c.Wait > 120*time.Second:
		return fmt.Errorf("edge config: wait is %v; set it between 0 and 120s (and at most the hub's max_wait)", c.Wait)
	case c.RequestTimeout <= 0:
		return fmt.Errorf("edge config: request_timeout is %v; set a positive duration such as 30s", c.RequestTimeout)
	case c.BackoffMin <= 0 || c.BackoffMax < c.BackoffMin:
		return fmt.Errorf("edge config: backoff %v..%v is invalid; set 0 < backoff_min <= backoff_max", c.BackoffMin, c.BackoffMax)
	case c.ErrorLogInterval < 0:
		return fmt.Errorf("edge config: error_log_interval is %v; set 0 or more", c.ErrorLogInterval)
	case c.BusyTimeout < 0:
		return fmt.Errorf("edge config: busy_timeout is %v; set 0 or more", c.BusyTimeout)
	case c.PushBatch < 1 || c.PushBatch > 10000:
		return fmt.Errorf("edge config: push_batch is %d; set it between 1 and 10000", c.PushBatch)
	case c.PushPipeline < 1 || c.PushPipeline > 16:
		return fmt.Errorf("edge config: push_pipeline is %d; set it between 1 (one batch at a time) and 16", c.PushPipeline)
	case c.PushInterval <= 0:
		return fmt.Errorf("edge config: push_interval is %v; set a positive duration such as 1s", c.PushInterval)
	}
	for _, t := range c.Tables {
		if strings.TrimSpace(t) == "" {
			return fmt.Errorf("edge config: tables has an empty name; list captured tables such as public.orders")
		}
	}
	return nil
}
