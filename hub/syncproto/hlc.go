package syncproto

import (
	"fmt"
	"strconv"
	"strings"
)

// HLC is a hybrid logical clock timestamp: a wall-clock reading in Unix microseconds,
// a logical counter that orders events within one microsecond (or while the wall clock
// lags a timestamp already seen), and the node (edge id) that issued it as tiebreak.
//
// Its text form "WWWWWWWWWWWWWWWWWWW-LLLLL-node" (wall zero-padded to 19 digits, logical
// to 5) sorts in the same order as Compare.
type HLC struct {
	Wall    int64 // Unix microseconds
	Logical uint16
	Node    string
}

// String returns the sortable text form.
func (h HLC) String() string {
	return fmt.Sprintf("%019d-%05d-%s", h.Wall, h.Logical, h.Node)
}

// Compare orders two timestamps: wall, then logical, then node.
func (h HLC) Compare(o HLC) int {
	switch {
	case h.Wall < o.Wall:
		return -1
	case h.Wall > o.Wall:
		return 1
	case h.Logical < o.Logical:
		return -1
	case h.Logical > o.Logical:
		return 1
	}
	return strings.Compare(h.Node, o.Node)
}

// ParseHLC parses the text form written by HLC.String.
func ParseHLC(s string) (HLC, error) {
	wall, rest, ok1 := strings.Cut(s, "-")
	logical, node, ok2 := strings.Cut(rest, "-")
	if !ok1 || !ok2 || len(wall) != 19 || len(logical) != 5 || node == "" {
		return HLC{}, fmt.Errorf("hlc %q: want WALL(19 digits)-LOGICAL(5 digits)-NODE", s)
	}
	w, err := strconv.ParseInt(wall, 10, 64)
	if err != nil || w < 0 {
		return HLC{}, fmt.Errorf("hlc %q: wall clock is not a non-negative integer", s)
	}
	l, err := strconv.ParseUint(logical, 10, 16)
	if err != nil {
		return HLC{}, fmt.Errorf("hlc %q: logical counter is not a number up to 65535", s)
	}
	return HLC{Wall: w, Logical: uint16(l), Node: node}, nil
}
