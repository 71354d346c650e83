package api

import (
	"fmt"
	"time"
)

// Limits on Config values.
const (
	MaxPageChangesLimit = 10000
	MaxWaitLimit        = 120 * time.Second
)

// Config tunes the sync API.
type Config struct {
	// MaxPageChanges is the largest limit a client may ask for, and the limit used when
	// it asks for none. 1..10000.
	MaxPageChanges int
	// MaxWait is the longest long-poll a client may ask for with wait=. 0..120s.
	MaxWait time.Duration
	// RequestTimeout bounds the work of one request, not counting its long-poll wait.
	RequestTimeout time.Duration
	// BodyLimit is the largest request body accepted, in bytes.
	BodyLimit int
	// ReadTimeout, WriteTimeout and IdleTimeout are the connection timeouts. WriteTimeout
	// must leave room for MaxWait.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	// ShutdownTimeout is how long Serve waits for in-flight requests after its context
	// is cancelled before it closes their connections.
	ShutdownTimeout time.Duration
	// GzipMinBytes: bodies smaller than this are sent uncompressed.
	GzipMinBytes int
	// GzipLevel is the compression level (1 fastest .. 9 smallest).
	GzipLevel int
	// Limits bound each edge's request rate and open long-polls (limits.go). The zero
	// value, DefaultConfig's, sets no limit; DefaultLimits are hub.yaml's defaults.
	Limits Limits
	// TLS makes the API serve HTTPS (tls.go).
	TLS TLSConfig
}

// DefaultConfig returns the configuration used when a field is not set.
func DefaultConfig() Config {
	return Config{
		MaxPageChanges:  1000,
		MaxWait:         30 * time.Second,
		RequestTimeout:  15 * time.Second,
		BodyLimit:       4 << 20,
		ReadTimeout:     30 * time.Second,
		WriteTimeout:    0,
		IdleTimeout:     120 * time.Second,
		ShutdownTimeout: 10 * time.Second,
		GzipMinBytes:    1024,
		GzipLevel:       1,
	}
}

// Validate checks every field and says how to fix the first bad one.
func (c Config) Validate() error {
	switch {
	case c.MaxPageChanges < 1 || c.MaxPageChanges > MaxPageChangesLimit:
		return fmt.Errorf("api config: max_page_changes is %d; set it between 1 and %d", c.MaxPageChanges, MaxPageChangesLimit)
	case c.MaxWait < 0 || c.MaxWait > MaxWaitLimit:
		return fmt.Errorf("api config: max_wait is %v; set it between 0 and %v", c.MaxWait, MaxWaitLimit)
	case c.RequestTimeout <= 0:
		return fmt.Errorf("api config: request_timeout is %v; set a positive duration such as 15s", c.RequestTimeout)
	case c.BodyLimit <= 0:
		return fmt.Errorf("api config: body_limit is %d; set a positive size in bytes", c.BodyLimit)
	case c.ReadTimeout < 0 || c.WriteTimeout < 0 || c.IdleTimeout < 0:
		return fmt.Errorf("api config: read, write and idle timeouts must not be negative (0 means none)")
	case c.WriteTimeout > 0 && c.WriteTimeout <= c.MaxWait:
		return fmt.Errorf("api config: write_timeout %v does not leave room for a long-poll of max_wait %v; raise it or set 0", c.WriteTimeout, c.MaxWait)
	case c.ShutdownTimeout <= 0:
		return fmt.Errorf("api config: shutdown_timeout is %v; set a positive duration such as 10s", c.ShutdownTimeout)
	case c.GzipMinBytes < 0:
		return fmt.Errorf("api config: gzip_min_bytes is %d; set 0 or more", c.GzipMinBytes)
	case c.GzipLevel < 1 || c.GzipLevel > 9:
		return fmt.Errorf("api config: gzip_level is %d; set it between 1 (fastest) and 9 (smallest)", c.GzipLevel)
	}
	if err := c.Limits.Validate(); err != nil {
		return err
	}
	return c.TLS.Validate()
}
