package cef_test

import (
	"strings"
	"testing"

	"github.com/phivault/phivault/internal/cef"
)

func TestHeader(t *testing.T) {
	tests := []struct{ give, want string }{
		{"plain", "plain"},
		{`a|b\c`, `a\|b\\c`},
		{"line\nbreak\r\x00", "line break  "},
		{"a=b", "a=b"},
	}
	for _, tt := range tests {
		if got := cef.Header(tt.give); got != tt.want {
			t.Errorf("Header(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

func TestValue(t *testing.T) {
	tests := []struct{ give, want string }{
		{"plain", "plain"},
		{`a=b\c`, `a\=b\\c`},
		{"line\nbreak\r", `line\nbreak\r`},
		{"a|b\x01", "a|b "},
	}
	for _, tt := range tests {
		if got := cef.Value(tt.give); got != tt.want {
			t.Errorf("Value(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

func TestList(t *testing.T) {
	if got := cef.List([]string{"a", "b"}); got != "a b" {
		t.Errorf("List = %q, want %q", got, "a b")
	}
	long := make([]string, 1000)
	for i := range long {
		long[i] = "Patient/0123456789"
	}
	got := cef.List(long)
	if len(got) > cef.MaxList || len(got) < cef.MaxList-20 || strings.HasSuffix(got, " ") {
		t.Errorf("List of 1000 ids has %d characters, want at most %d, cut at a space", len(got), cef.MaxList)
	}
}

func TestLine(t *testing.T) {
	l := cef.NewLine("phivault", "phivault", "1.0", "read", "read a|b", 3)
	l.Ext("rt", "1700000000000")
	l.Ext("suid", "")
	l.Labelled("cs1", "requestId", "")
	l.Labelled("cs2", "clientId", "app=1")
	const want = `CEF:0|phivault|phivault|1.0|read|read a\|b|3|rt=1700000000000 cs2Label=clientId cs2=app\=1`
	if got := l.String(); got != want {
		t.Fatalf("line =\n%s\nwant\n%s", got, want)
	}
}
