package mysql

import (
	"fmt"
	"testing"

	"github.com/synchub/synchub/cdc"
)

func TestCanonicalForms(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"2024-02-29 13:14:15.123000", "2024-02-29T13:14:15.123"},
		{"2024-02-29 13:14:15.000000", "2024-02-29T13:14:15"},
		{"2024-02-29 13:14:15", "2024-02-29T13:14:15"},
		{"0000-00-00 00:00:00", "0000-00-00T00:00:00"},
	} {
		if got := canonDateTime(c.in, false); got != c.want {
			t.Errorf("canonDateTime(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := canonDateTime("2024-02-29 13:14:15.500000", true); got != "2024-02-29T13:14:15.5Z" {
		t.Errorf("timestamp with zone = %q", got)
	}
	for _, c := range []struct{ in, want string }{
		{"12:34:56.789000", "12:34:56.789"}, {"-838:59:59", "-838:59:59"}, {"00:00:00.000000", "00:00:00"}, {"10:00:00.100000", "10:00:00.1"},
	} {
		if got := trimFraction(c.in); got != c.want {
			t.Errorf("trimFraction(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestLabels(t *testing.T) {
	labels := parseLabels(`enum('a','b''c','d\\e',',')`)
	if fmt.Sprintf("%q", labels) != `["a" "b'c" "d\\e" ","]` {
		t.Fatalf("parseLabels = %q", labels)
	}
	if enumLabel(labels, 2) != "b'c" || enumLabel(labels, 0) != "" || enumLabel(labels, 9) != "" {
		t.Error("enumLabel")
	}
	if got := setLabels([]string{"a", "b", "c"}, 0b101); got != "a,c" {
		t.Errorf("setLabels = %q", got)
	}
	if got := setLabels([]string{"a"}, 0); got != "" {
		t.Errorf("empty set = %q", got)
	}
}

func TestBinlogValue(t *testing.T) {
	dec := cdc.Column{Name: "u", Kind: cdc.KindDecimal}
	v, err := binlogValue(&dec, &colInfo{dataType: "bigint", unsigned: true}, uint64(18446744073709551615))
	if err != nil || !v.Equal(cdc.Text(cdc.KindDecimal, "18446744073709551615")) {
		t.Errorf("BIGINT UNSIGNED max = %v, %v", v, err)
	}
	f := cdc.Column{Name: "f", Kind: cdc.KindFloat}
	if v, _ := binlogValue(&f, &colInfo{isFloat: true}, float32(1.1)); v.AsFloat() != 1.1 {
		t.Errorf("FLOAT 1.1 widened to %v", v.AsFloat())
	}
	bin := cdc.Column{Name: "b", Kind: cdc.KindBytes}
	if v, _ := binlogValue(&bin, &colInfo{fixedLen: 4}, "\x01\x02"); fmt.Sprint(v.AsBytes()) != "[1 2 0 0]" {
		t.Errorf("BINARY(4) padding = %v", v.AsBytes())
	}
	txt := cdc.Column{Name: "t", Kind: cdc.KindText}
	if _, err := binlogValue(&txt, &colInfo{}, 3.5); err == nil {
		t.Error("a float for a text column was accepted")
	}
	if v, _ := binlogValue(&txt, &colInfo{}, nil); !v.IsNull() {
		t.Error("nil is not NULL")
	}
	if bitValue([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) != -1 || bitValue([]byte{2, 0xaa}) != 0x2aa {
		t.Error("bitValue")
	}
}

func TestJSONText(t *testing.T) {
	mysqlJSON := &colInfo{dataType: "json"}
	if got := jsonText(mysqlJSON, `{"a": [1, 2], "b": {"c": null}}`); got != `{"a":[1,2],"b":{"c":null}}` {
		t.Errorf("MySQL JSON = %s", got)
	}
	mariaJSON := &colInfo{dataType: "longtext"}
	if got := jsonText(mariaJSON, `{"a": 1}`); got != `{"a": 1}` {
		t.Errorf("MariaDB JSON text changed to %s", got)
	}
	if got := jsonText(mysqlJSON, `not json`); got != `not json` {
		t.Errorf("invalid JSON changed to %s", got)
	}
}
