package postgres

import (
	"database/sql/driver"
	"fmt"
	"strconv"
	"strings"

	"github.com/synchub/synchub/cdc"
)

// LSN is a PostgreSQL write-ahead log position, the source position of this adapter.
// Its canonical text form is PostgreSQL's own: two upper-case hexadecimal halves
// separated by a slash, e.g. "16/B374D848". A transaction's position is the end of its
// commit record, so resuming from it never delivers that transaction again.
type LSN uint64

var _ cdc.Position = LSN(0)

// String returns the canonical "XXXXXXXX/XXXXXXXX" form.
func (l LSN) String() string {
	return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l))
}

// IsZero reports whether l is the "no position" value 0/0.
func (l LSN) IsZero() bool { return l == 0 }

// Compare returns -1, 0 or +1 as l is before, equal to or after o.
func (l LSN) Compare(o LSN) int {
	switch {
	case l < o:
		return -1
	case l > o:
		return 1
	}
	return 0
}

// ParseLSN parses the "X/X" text form (either case, one to eight hex digits per half).
// It never panics.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("parse LSN %q: want two hexadecimal halves separated by a slash, like 16/B374D848", s)
	}
	h, err := parseHalf(hi)
	if err != nil {
		return 0, fmt.Errorf("parse LSN %q: %w", s, err)
	}
	l, err := parseHalf(lo)
	if err != nil {
		return 0, fmt.Errorf("parse LSN %q: %w", s, err)
	}
	return LSN(h<<32 | l), nil
}

func parseHalf(s string) (uint64, error) {
	if len(s) == 0 || len(s) > 8 {
		return 0, fmt.Errorf("each half must have 1 to 8 hexadecimal digits")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return 0, fmt.Errorf("%q is not hexadecimal", s)
		}
	}
	return strconv.ParseUint(s, 16, 32)
}

// MarshalText implements encoding.TextMarshaler.
func (l LSN) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *LSN) UnmarshalText(b []byte) error {
	v, err := ParseLSN(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// Scan implements sql.Scanner for the pg_lsn text form.
func (l *LSN) Scan(src any) error {
	switch v := src.(type) {
	case string:
		return l.UnmarshalText([]byte(v))
	case []byte:
		return l.UnmarshalText(v)
	case nil:
		*l = 0
		return nil
	}
	return fmt.Errorf("scan LSN: cannot convert %T", src)
}

// Value implements driver.Valuer with the canonical text form.
func (l LSN) Value() (driver.Value, error) { return l.String(), nil }
