package postgres

import (
	"testing"

	"github.com/synchub/synchub/cdc"
)

func TestLSN_ParseFormat(t *testing.T) {
	cases := []struct {
		in   string
		want LSN
		text string
	}{
		{"0/0", 0, "0/0"},
		{"16/B374D848", 0x16_B374D848, "16/B374D848"},
		{"16/b374d848", 0x16_B374D848, "16/B374D848"},
		{"FFFFFFFF/FFFFFFFF", ^LSN(0), "FFFFFFFF/FFFFFFFF"},
		{"00000001/0000000A", 0x1_0000000A, "1/A"},
	}
	for _, c := range cases {
		got, err := ParseLSN(c.in)
		if err != nil {
			t.Fatalf("ParseLSN(%q): %v", c.in, err)
		}
		if got != c.want {
			t.Errorf("ParseLSN(%q) = %#x, want %#x", c.in, uint64(got), uint64(c.want))
		}
		if got.String() != c.text {
			t.Errorf("LSN(%#x).String() = %q, want %q", uint64(got), got.String(), c.text)
		}
		back, err := ParseLSN(got.String())
		if err != nil || back != got {
			t.Errorf("round trip of %q: %v, %v", c.in, back, err)
		}
	}
}

func TestLSN_ParseRejects(t *testing.T) {
	for _, in := range []string{"", "/", "0/", "/0", "1", "G/0", "0/G", "1/2/3", "123456789/0", "0/123456789", "-1/0", "+1/0", " 1/0", "0x1/0"} {
		if l, err := ParseLSN(in); err == nil {
			t.Errorf("ParseLSN(%q) = %v, want an error", in, l)
		}
	}
}

func TestLSN_Compare(t *testing.T) {
	a, _ := ParseLSN("1/FFFFFFFF")
	b, _ := ParseLSN("2/0")
	if a.Compare(b) != -1 || b.Compare(a) != 1 || a.Compare(a) != 0 {
		t.Fatalf("Compare: %v vs %v gave %d, %d, %d", a, b, a.Compare(b), b.Compare(a), a.Compare(a))
	}
	if !LSN(0).IsZero() || a.IsZero() {
		t.Fatal("IsZero wrong")
	}
}

func TestLSN_TextAndScan(t *testing.T) {
	var l LSN
	if err := l.UnmarshalText([]byte("A/B")); err != nil || l != 0xA_0000000B {
		t.Fatalf("UnmarshalText: %v %v", l, err)
	}
	var s LSN
	if err := s.Scan("A/B"); err != nil || s != l {
		t.Fatalf("Scan: %v %v", s, err)
	}
	if err := s.Scan(12); err == nil {
		t.Fatal("Scan(int) should fail")
	}
	v, _ := l.Value()
	if v != "A/B" {
		t.Fatalf("Value = %v", v)
	}
	src := &Source{}
	p, err := src.ParsePosition(l.String())
	if err != nil || p != cdc.Position(l) {
		t.Fatalf("ParsePosition = %v, %v", p, err)
	}
	if _, err := src.ParsePosition("nope"); err == nil {
		t.Fatal("ParsePosition(nope) should fail")
	}
}

func FuzzParseLSN(f *testing.F) {
	for _, s := range []string{"0/0", "16/B374D848", "FFFFFFFF/FFFFFFFF", "", "/", "1/2/3", "zz/1", "123456789/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLSN(s)
		if err != nil {
			return
		}
		back, err := ParseLSN(l.String())
		if err != nil || back != l {
			t.Fatalf("%q parsed to %v, which does not round-trip: %v %v", s, l, back, err)
		}
	})
}
