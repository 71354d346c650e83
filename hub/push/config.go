package push

import (
	"fmt"
	"time"

	"github.com/synchub/synchub/hub/conflict"
)

// Config tunes the push service.
type Config struct {
	// Policies maps a table ("public.orders") to its conflict policy.
	Policies map[string]conflict.TablePolicy
	// DefaultPolicy applies to tables not in Policies; empty means lww with the server
	// as merge tiebreak.
	DefaultPolicy conflict.TablePolicy
	// MaxBatchChanges is the most changes one batch may hold; a larger batch is refused
	// whole (HTTP 413) and the edge must split it.
	MaxBatchChanges int
	// WaitTimeout bounds how long a push waits for its write-back transaction to be
	// captured into the change log, so that its answer carries the rows' new version.
	// After it the answer goes without versions; the edge learns them on its next pull.
	WaitTimeout time.Duration
	// MetaPath is the meta database (push batches, conflict queue, rejected changes).
	// DefaultMetaPath gives the usual place next to the change log.
	MetaPath string
	// LandingGrace is how far the change log's source commit time must have passed the
	// start of an interrupted batch write before the hub concludes that the write never
	// committed and applies the batch afresh (see Service). It covers clock differences
	// between the hub and the central database.
	LandingGrace time.Duration
	// OrderWait bounds how long a batch sent with After (see syncproto.PushRequest)
	// waits for the batch it follows: for that batch to reach the hub, and for its
	// central-database write to complete. After it the batch is answered KindPending
	// with nothing written, and the edge re-sends both in order.
	OrderWait time.Duration
	// AnswerRetention is how long the answer of a finished batch is kept to answer a
	// re-send of the same batch id: 0 keeps answers for ever, otherwise at least an
	// hour. After it the batch record stays without its answer, and a re-send is not
	// applied again but answered with the current rows (code answer_expired).
	AnswerRetention time.Duration
}

// DefaultConfig returns the defaults: policy lww, 1000 changes per batch, a 10 s wait
// for capture, a 5 s wait for the batch a batch follows.
func DefaultConfig() Config {
	return Config{
		MaxBatchChanges: 1000,
		WaitTimeout:     10 * time.Second,
		LandingGrace:    time.Minute,
		OrderWait:       5 * time.Second,
		AnswerRetention: 30 * 24 * time.Hour,
	}
}

// Validate reports the first invalid setting, naming it. resolvers are the custom
// resolvers the policies may name.
func (c Config) Validate(resolvers map[string]conflict.Resolver) error {
	switch {
	case c.MaxBatchChanges < 1:
		return fmt.Errorf("push.max_batch_changes: %d; must be at least 1", c.MaxBatchChanges)
	case c.WaitTimeout < 0:
		return fmt.Errorf("push.wait_timeout: %v; must not be negative (0 answers without waiting)", c.WaitTimeout)
	case c.LandingGrace <= 0:
		return fmt.Errorf("push.landing_grace: %v; must be positive, such as 1m", c.LandingGrace)
	case c.AnswerRetention < 0 || (c.AnswerRetention > 0 && c.AnswerRetention < time.Hour):
		return fmt.Errorf("push.answer_retention: %v; set 0 to keep answers for ever, or at least 1h (an edge re-sends a batch whose answer it lost, possibly after days offline), such as 720h for 30 days", c.AnswerRetention)
	case c.OrderWait <= 0:
		return fmt.Errorf("push.order_wait: %v; must be positive, such as 5s (how long a batch waits for the batch it follows)", c.OrderWait)
	}
	if err := c.Rules(resolvers).Validate(); err != nil {
		return fmt.Errorf("push.policies: %w", err)
	}
	return nil
}

// Rules returns the conflict rules of c with the given custom resolvers.
func (c Config) Rules(resolvers map[string]conflict.Resolver) conflict.Rules {
	return conflict.Rules{Default: c.DefaultPolicy, Tables: c.Policies, Resolvers: resolvers}
}
