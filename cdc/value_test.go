package cdc

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

func TestValue_JSONRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		v    Value
		json string
	}{
		{"null", Null(), `null`},
		{"true", Bool(true), `true`},
		{"false", Bool(false), `false`},
		{"int64 max", Int(math.MaxInt64), `9223372036854775807`},
		{"int64 min", Int(math.MinInt64), `-9223372036854775808`},
		{"beyond 2^53", Int(1<<53 + 1), `9007199254740993`},
		{"float", Float(1.0000000000000002), `1.0000000000000002`},
		{"float tiny", Float(5e-324), `5e-324`},
		{"NaN", Float(math.NaN()), `"NaN"`},
		{"+Inf", Float(math.Inf(1)), `"Infinity"`},
		{"-Inf", Float(math.Inf(-1)), `"-Infinity"`},
		{"numeric 40 digits", Text(KindDecimal, "1234567890123456789012345678901234567890.0123456789"), `"1234567890123456789012345678901234567890.0123456789"`},
		{"numeric NaN", Text(KindDecimal, "NaN"), `"NaN"`},
		{"unicode text", Text(KindText, "héllo 🌍 \"q\" \\ \n\t\u0001 \u2028 中文"), `"héllo 🌍 \"q\" \\ \n\t\u0001 \u2028 中文"`},
		{"empty text", Text(KindText, ""), `""`},
		{"bytes with NUL", Bytes([]byte{0, 0xff, 0, 'a'}), `"AP8AYQ=="`},
		{"empty bytes", Bytes([]byte{}), `""`},
		{"uuid", Text(KindUUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`},
		{"json", Text(KindJSON, `{"a": [1, 2.50]}`), `"{\"a\": [1, 2.50]}"`},
		{"date", Text(KindDate, "2024-02-29"), `"2024-02-29"`},
		{"time", Text(KindTime, "23:59:59.999999"), `"23:59:59.999999"`},
		{"timestamp", Text(KindTimestamp, "2024-01-02T03:04:05.123456"), `"2024-01-02T03:04:05.123456"`},
		{"timestamptz", Text(KindTimestampTZ, "2024-06-01T06:30:00Z"), `"2024-06-01T06:30:00Z"`},
		{"interval", Text(KindInterval, "P1Y2M3DT4H5M6S"), `"P1Y2M3DT4H5M6S"`},
		{"array", Text(KindArray, `["x",null,"y,\"z\""]`), `"[\"x\",null,\"y,\\\"z\\\"\"]"`},
		{"enum", Text(KindEnum, "happy"), `"happy"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := c.v.AppendJSON(nil)
			if string(got) != c.json {
				t.Fatalf("AppendJSON = %s, want %s", got, c.json)
			}
			if !json.Valid(got) {
				t.Fatalf("AppendJSON produced invalid JSON: %s", got)
			}
			kind := c.v.Kind()
			if kind == KindNull {
				kind = KindText
			}
			back, err := ParseJSONValue(kind, got)
			if err != nil {
				t.Fatalf("ParseJSONValue: %v", err)
			}
			if !back.Equal(c.v) {
				t.Fatalf("round trip: got %v (%s), want %v (%s)", back, back.Kind(), c.v, c.v.Kind())
			}
			// encoding/json reads the same text for string kinds.
			if c.v.Kind() >= KindDecimal && c.v.Kind() != KindBytes {
				var s string
				if err := json.Unmarshal(got, &s); err != nil || s != c.v.AsString() {
					t.Fatalf("encoding/json reads %q (%v), want %q", s, err, c.v.AsString())
				}
			}
		})
	}
}

func TestValue_InvalidUTF8IsReplaced(t *testing.T) {
	got := Text(KindText, "a\xffb").AppendJSON(nil)
	if string(got) != `"a\ufffdb"` {
		t.Fatalf("got %s", got)
	}
}

func TestParseJSONValue_Errors(t *testing.T) {
	cases := []struct {
		kind Kind
		raw  string
	}{
		{KindInt, `9223372036854775808`},
		{KindInt, `1.5`},
		{KindInt, `"1"`},
		{KindBool, `1`},
		{KindFloat, `"fast"`},
		{KindBytes, `"not base64!"`},
		{KindText, `123`},
		{KindText, `"unterminated`},
		{KindText, `"bad \q escape"`},
		{KindNull, `1`},
		{Kind(200), `"x"`},
		{KindText, ``},
	}
	for _, c := range cases {
		if v, err := ParseJSONValue(c.kind, []byte(c.raw)); err == nil {
			t.Errorf("ParseJSONValue(%s, %s) = %v, want an error", c.kind, c.raw, v)
		}
	}
}

func TestValue_SQLiteArg(t *testing.T) {
	if got := Float(math.NaN()).SQLiteArg(); got != "NaN" {
		t.Fatalf("NaN SQLite arg = %v, want the text NaN (SQLite stores a NaN REAL as NULL)", got)
	}
	if got := Bool(true).SQLiteArg(); got != int64(1) {
		t.Fatalf("bool arg = %v", got)
	}
	if got := Bytes(nil).SQLiteArg(); !bytes.Equal(got.([]byte), []byte{}) {
		t.Fatalf("empty bytes arg = %#v", got)
	}
	if got := Null().SQLiteArg(); got != nil {
		t.Fatalf("NULL arg = %#v", got)
	}
}

func TestKind_TextRoundTrip(t *testing.T) {
	for k := KindNull; k <= KindEnum; k++ {
		back, err := ParseKind(k.String())
		if err != nil || back != k {
			t.Fatalf("kind %d: %q → %v, %v", k, k.String(), back, err)
		}
	}
	if _, err := ParseKind("varchar"); err == nil {
		t.Fatal("ParseKind accepted an unknown name")
	}
}

func TestIsRetryable(t *testing.T) {
	if IsRetryable(ErrPositionLost) {
		t.Fatal("ErrPositionLost must not be retryable")
	}
	if IsRetryable(&Error{Op: "check", Err: ErrPositionLost, Fix: "x"}) {
		t.Fatal("a wrapped ErrPositionLost must not be retryable")
	}
	if !IsRetryable(&Error{Op: "read", Err: bytes.ErrTooLarge, Transient: true}) {
		t.Fatal("a transient error must be retryable")
	}
	if IsRetryable(&Error{Op: "check", Err: bytes.ErrTooLarge}) {
		t.Fatal("a configuration error must not be retryable")
	}
}

// FuzzParseJSONValue: no input makes the parser panic, and whatever it accepts
// re-encodes to JSON that parses back to the same value.
func FuzzParseJSONValue(f *testing.F) {
	for _, s := range []string{`null`, `true`, `12`, `-9223372036854775808`, `1e308`, `"NaN"`, `"AP8="`, `"\ud83d\ude00"`, `"\ud800"`, `"a\u0000b"`, `"`, `""`} {
		for k := KindBool; k <= KindEnum; k++ {
			f.Add(uint8(k), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, k uint8, raw []byte) {
		v, err := ParseJSONValue(Kind(k), raw)
		if err != nil {
			return
		}
		again := v.AppendJSON(nil)
		if !json.Valid(again) {
			t.Fatalf("re-encoded value is invalid JSON: %s", again)
		}
		kind := Kind(k)
		back, err := ParseJSONValue(kind, again)
		if err != nil {
			t.Fatalf("re-encoded %s does not parse: %v", again, err)
		}
		if !back.Equal(v) && !(v.IsNull() && back.IsNull()) {
			t.Fatalf("%s: %v != %v", again, back, v)
		}
	})
}
