package postgres

import (
	"bytes"
	"fmt"
	"strconv"
	"time"
)

// isInfinity reports whether b is PostgreSQL's infinite date or timestamp.
func isInfinity(b []byte) bool {
	return string(b) == "infinity" || string(b) == "-infinity"
}

// appendDate keeps ISO dates as they are and writes BC dates with ISO 8601's
// astronomical year ("0044-03-15 BC" → "-0043-03-15").
func appendDate(dst, b []byte) ([]byte, error) {
	if isInfinity(b) || !bytes.HasSuffix(b, []byte(" BC")) {
		return append(dst, b...), nil
	}
	y, m, d, err := parseDate(b[:len(b)-3])
	if err != nil {
		return dst, err
	}
	return appendYMD(dst, 1-y, m, d), nil
}

// appendTimestamp turns "2006-01-02 15:04:05.999999" (DateStyle ISO) into
// "2006-01-02T15:04:05.999999"; PostgreSQL already trims trailing zeros of the fraction.
func appendTimestamp(dst, b []byte) ([]byte, error) {
	if isInfinity(b) {
		return append(dst, b...), nil
	}
	bc := bytes.HasSuffix(b, []byte(" BC"))
	if bc {
		b = b[:len(b)-3]
	}
	sp := bytes.IndexByte(b, ' ')
	if sp < 0 {
		return dst, fmt.Errorf("%q is not an ISO timestamp", truncate(b))
	}
	if !bc {
		dst = append(dst, b[:sp]...)
		dst = append(dst, 'T')
		return append(dst, b[sp+1:]...), nil
	}
	y, m, d, err := parseDate(b[:sp])
	if err != nil {
		return dst, err
	}
	dst = appendYMD(dst, 1-y, m, d)
	dst = append(dst, 'T')
	return append(dst, b[sp+1:]...), nil
}

// appendTimestampTZ turns "2006-01-02 15:04:05.999999+05:30" in any offset into the
// same instant in UTC, "2006-01-02T09:34:05.999999Z".
func appendTimestampTZ(dst, b []byte) ([]byte, error) {
	if isInfinity(b) {
		return append(dst, b...), nil
	}
	orig := b
	bc := bytes.HasSuffix(b, []byte(" BC"))
	if bc {
		b = b[:len(b)-3]
	}
	sp := bytes.IndexByte(b, ' ')
	if sp < 0 {
		return dst, fmt.Errorf("%q is not an ISO timestamp with time zone", truncate(orig))
	}
	date, rest := b[:sp], b[sp+1:]
	signAt := bytes.IndexAny(rest, "+-")
	if signAt < 0 {
		return dst, fmt.Errorf("%q has no UTC offset", truncate(orig))
	}
	clock, off := rest[:signAt], rest[signAt:]
	offSecs, err := parseOffset(off)
	if err != nil {
		return dst, fmt.Errorf("%q: %w", truncate(orig), err)
	}
	if offSecs == 0 && !bc {
		dst = append(dst, date...)
		dst = append(dst, 'T')
		dst = append(dst, clock...)
		return append(dst, 'Z'), nil
	}
	y, m, d, err := parseDate(date)
	if err != nil {
		return dst, err
	}
	hh, mm, ss, frac, err := parseClock(clock)
	if err != nil {
		return dst, fmt.Errorf("%q: %w", truncate(orig), err)
	}
	if bc {
		y = 1 - y
	}
	t := time.Date(y, time.Month(m), d, hh, mm, ss, 0, time.UTC).Add(-time.Duration(offSecs) * time.Second)
	dst = appendYMD(dst, t.Year(), int(t.Month()), t.Day())
	dst = append(dst, 'T')
	dst = appendPadded(dst, t.Hour(), 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, t.Minute(), 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, t.Second(), 2)
	dst = append(dst, frac...)
	return append(dst, 'Z'), nil
}

// appendYMD writes an ISO 8601 date: a year of at least four digits, negative before
// year 1.
func appendYMD(dst []byte, y, m, d int) []byte {
	if y < 0 {
		dst = append(dst, '-')
		y = -y
	}
	dst = appendPadded(dst, y, 4)
	dst = append(dst, '-')
	dst = appendPadded(dst, m, 2)
	dst = append(dst, '-')
	return appendPadded(dst, d, 2)
}

func appendPadded(dst []byte, v, width int) []byte {
	var buf [20]byte
	digits := strconv.AppendInt(buf[:0], int64(v), 10)
	for i := len(digits); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, digits...)
}

func parseDate(b []byte) (y, m, d int, err error) {
	parts := bytes.Split(b, []byte("-"))
	if len(parts) != 3 {
		return 0, 0, 0, fmt.Errorf("%q is not an ISO date", truncate(b))
	}
	var v [3]int
	for i, p := range parts {
		n, perr := parseInt64(p)
		if perr != nil || n < 0 || n > 1e7 || len(p) == 0 || p[0] == '-' || p[0] == '+' {
			return 0, 0, 0, fmt.Errorf("%q is not an ISO date", truncate(b))
		}
		v[i] = int(n)
	}
	if v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 {
		return 0, 0, 0, fmt.Errorf("%q is not an ISO date", truncate(b))
	}
	return v[0], v[1], v[2], nil
}

// parseClock reads "15:04:05[.ffffff]" and returns the fraction with its dot.
func parseClock(b []byte) (hh, mm, ss int, frac []byte, err error) {
	if dot := bytes.IndexByte(b, '.'); dot >= 0 {
		b, frac = b[:dot], b[dot:]
		for _, c := range frac[1:] {
			if c < '0' || c > '9' {
				return 0, 0, 0, nil, fmt.Errorf("bad fraction of a second")
			}
		}
	}
	if len(b) != 8 || b[2] != ':' || b[5] != ':' {
		return 0, 0, 0, nil, fmt.Errorf("time of day is not HH:MM:SS")
	}
	var v [3]int
	for i := range v {
		p := b[i*3 : i*3+2]
		if p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9' {
			return 0, 0, 0, nil, fmt.Errorf("time of day is not HH:MM:SS")
		}
		v[i] = int(p[0]-'0')*10 + int(p[1]-'0')
	}
	return v[0], v[1], v[2], frac, nil
}

// parseOffset reads a UTC offset "+HH", "+HH:MM" or "+HH:MM:SS" into seconds.
func parseOffset(b []byte) (int, error) {
	if len(b) < 3 || (b[0] != '+' && b[0] != '-') {
		return 0, fmt.Errorf("bad UTC offset")
	}
	sign := 1
	if b[0] == '-' {
		sign = -1
	}
	secs := 0
	mult := 3600
	for i := 1; i < len(b); i += 3 {
		if i+2 > len(b) || b[i] < '0' || b[i] > '9' || b[i+1] < '0' || b[i+1] > '9' || mult == 0 {
			return 0, fmt.Errorf("bad UTC offset")
		}
		secs += (int(b[i]-'0')*10 + int(b[i+1]-'0')) * mult
		mult /= 60
		if i+2 < len(b) && b[i+2] != ':' {
			return 0, fmt.Errorf("bad UTC offset")
		}
	}
	return sign * secs, nil
}
