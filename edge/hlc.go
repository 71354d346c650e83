package edge

import (
	"context"
	"fmt"
	"sync"

	"github.com/synchub/synchub/hub/syncproto"
)

// clock is the edge's hybrid logical clock. It only moves forward: its wall part is
// the largest of the local write times it stamped and the commit times it saw in pulls,
// and the logical part orders stamps within one wall value. It is persisted in
// _synchub_meta (key hlc) in the transaction that advances it, so it never goes back
// across restarts.
type clock struct {
	mu   sync.Mutex
	last syncproto.HLC
}

// loadClock reads the persisted clock; a missing one starts at zero.
func loadClock(ctx context.Context, l *localDB, node string) (*clock, error) {
	s, ok, err := l.getMeta(ctx, metaHLC)
	if err != nil {
		return nil, err
	}
	c := &clock{last: syncproto.HLC{Node: node}}
	if ok {
		h, err := syncproto.ParseHLC(s)
		if err != nil {
			return nil, fmt.Errorf("_synchub_meta hlc: %w; the local database is damaged", err)
		}
		c.last = syncproto.HLC{Wall: h.Wall, Logical: h.Logical, Node: node}
	}
	return c, nil
}

// observe merges a timestamp received from the hub (a commit time, Unix microseconds)
// and returns the clock.
func (c *clock) observe(ts int64) syncproto.HLC {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ts > c.last.Wall {
		c.last.Wall, c.last.Logical = ts, 0
	}
	return c.last
}

// stamp returns the timestamp of a local write made at wall (Unix microseconds):
// later than every timestamp the clock issued or observed.
func (c *clock) stamp(wall int64) syncproto.HLC {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case wall > c.last.Wall:
		c.last.Wall, c.last.Logical = wall, 0
	case c.last.Logical == ^uint16(0):
		c.last.Wall, c.last.Logical = c.last.Wall+1, 0
	default:
		c.last.Logical++
	}
	return c.last
}

// current returns the clock without advancing it.
func (c *clock) current() syncproto.HLC {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}
