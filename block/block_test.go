package block_test

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/block"
)

// MustOpen opens a List on a fresh file in a temp dir, on clock now.
func MustOpen(tb testing.TB, path string, now *time.Time) *block.List {
	tb.Helper()
	if path == "" {
		path = filepath.Join(tb.TempDir(), "blocks.db")
	}
	l, err := block.Open(context.Background(), path)
	if err != nil {
		tb.Fatal(err)
	}
	if now != nil {
		l.Now = func() time.Time { return *now }
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

func prefixes(tb testing.TB, list ...string) []netip.Prefix {
	tb.Helper()
	var out []netip.Prefix
	for _, s := range list {
		p, err := block.ParsePrefix(s)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestParsePrefix(t *testing.T) {
	tests := []struct{ give, want string }{
		{"203.0.113.7", "203.0.113.7/32"},
		{" 10.1.2.3/16 ", "10.1.0.0/16"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"2001:db8::/32", "2001:db8::/32"},
		{"::ffff:203.0.113.7", "203.0.113.7/32"},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8"},
	}
	for _, tt := range tests {
		got, err := block.ParsePrefix(tt.give)
		if err != nil || got.String() != tt.want {
			t.Errorf("ParsePrefix(%q) = %v, %v, want %s", tt.give, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "example.org", "10.0.0.0/33", "fe80::1%eth0", "10.0.0.1/"} {
		if p, err := block.ParsePrefix(bad); phivault.ErrorCode(err) != phivault.EINVALID {
			t.Errorf("ParsePrefix(%q) = %v, %v, want EINVALID", bad, p, err)
		}
	}
}

func TestList_Add(t *testing.T) {
	ctx := context.Background()
	t.Run("OK", func(t *testing.T) {
		l := MustOpen(t, "", nil)
		if _, err := l.Add(ctx, prefixes(t, "203.0.113.7", "10.1.0.0/16", "2001:db8::/48"), time.Time{}, "act-1"); err != nil {
			t.Fatal(err)
		}
		for _, a := range []string{"203.0.113.7", "10.1.255.9", "2001:db8:0:7::1", "::ffff:203.0.113.7"} {
			if !l.Blocked(addr(a)) {
				t.Errorf("Blocked(%s) = false, want true", a)
			}
		}
		// Near misses: the neighbours of each block.
		for _, a := range []string{"203.0.113.8", "203.0.113.6", "10.2.0.1", "10.0.255.255", "2001:db8:1::1", "198.51.100.1"} {
			if l.Blocked(addr(a)) {
				t.Errorf("Blocked(%s) = true, want false", a)
			}
		}
		if got := l.Refused(); got != 4 {
			t.Errorf("Refused() = %d, want 4", got)
		}
		if l.Blocked(netip.Addr{}) {
			t.Error("Blocked(invalid) = true")
		}
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		l := MustOpen(t, "", nil)
		l.Protected = prefixes(t, "192.0.2.0/28")
		for _, bad := range [][]string{
			{"0.0.0.0/0"}, {"::/0"}, {"127.0.0.1"}, {"127.0.0.0/8"}, {"::1"}, {"64.0.0.0/2"},
			{"192.0.2.5"}, {"192.0.0.0/16"},
			{"198.51.100.1", "192.0.2.1"}, // one bad: none stored
		} {
			_, err := l.Add(ctx, prefixes(t, bad...), time.Time{}, "act-1")
			if phivault.ErrorCode(err) != phivault.EINVALID || phivault.ErrorMessage(err) == "" {
				t.Errorf("Add(%v) = %v, want EINVALID with a reason", bad, err)
			}
		}
		if l.Blocked(addr("198.51.100.1")) {
			t.Error("a refused Add stored its other blocks")
		}
		if _, err := l.Add(ctx, nil, time.Time{}, "act-1"); phivault.ErrorCode(err) != phivault.EINVALID {
			t.Errorf("Add(none) = %v, want EINVALID", err)
		}
		// Next to the proxy is fine.
		if _, err := l.Add(ctx, prefixes(t, "192.0.2.16/28"), time.Time{}, "act-1"); err != nil {
			t.Errorf("Add(beside the proxy) = %v", err)
		}
	})
}

func TestList_Expiry(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "blocks.db")
	l := MustOpen(t, path, &now)
	if _, err := l.Add(ctx, prefixes(t, "203.0.113.7"), now.Add(time.Hour), "act-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Add(ctx, prefixes(t, "203.0.113.0/24"), now.Add(2*time.Hour), "act-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Add(ctx, prefixes(t, "198.51.100.1"), now.Add(-time.Second), "act-3"); phivault.ErrorCode(err) != phivault.EINVALID {
		t.Errorf("Add(ended) = %v, want EINVALID", err)
	}
	now = now.Add(time.Hour)
	if !l.Blocked(addr("203.0.113.7")) { // by act-2's /24 still
		t.Error("203.0.113.7 not blocked by the /24")
	}
	now = now.Add(time.Hour)
	if l.Blocked(addr("203.0.113.7")) {
		t.Error("203.0.113.7 blocked after every block ended")
	}
	if err := l.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if list, err := l.Blocks(ctx); err != nil || len(list) != 0 {
		t.Errorf("Blocks() after expiry = %v, %v, want none", list, err)
	}
}

func TestList_Remove(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "blocks.db")
	l := MustOpen(t, path, nil)
	if _, err := l.Add(ctx, prefixes(t, "203.0.113.7", "198.51.100.0/24"), time.Time{}, "act-1"); err != nil {
		t.Fatal(err)
	}
	other, err := l.Add(ctx, prefixes(t, "203.0.113.7"), time.Time{}, block.OriginOperator)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := l.Remove(ctx, "act-1"); err != nil || n != 2 {
		t.Fatalf("Remove(act-1) = %d, %v, want 2", n, err)
	}
	if l.Blocked(addr("198.51.100.9")) {
		t.Error("act-1's network still blocked after its removal")
	}
	if !l.Blocked(addr("203.0.113.7")) {
		t.Error("the operator's block of the same address went with act-1's")
	}
	// It survives a restart.
	l.Close()
	l2 := MustOpen(t, path, nil)
	if !l2.Blocked(addr("203.0.113.7")) {
		t.Error("block lost on reopening")
	}
	if n, err := l2.Remove(ctx, other[0].ID); err != nil || n != 1 {
		t.Fatalf("Remove(%s) = %d, %v, want 1", other[0].ID, n, err)
	}
	if l2.Blocked(addr("203.0.113.7")) {
		t.Error("blocked after removal by id")
	}
	if n, err := l2.Remove(ctx, "blk-none"); err != nil || n != 0 {
		t.Errorf("Remove(unknown) = %d, %v, want 0, nil", n, err)
	}
}

func TestList_LoadSeesOtherProcess(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "blocks.db")
	server := MustOpen(t, path, nil)
	cli := MustOpen(t, path, nil)
	if _, err := cli.Add(ctx, prefixes(t, "203.0.113.7"), time.Time{}, block.OriginOperator); err != nil {
		t.Fatal(err)
	}
	if server.Blocked(addr("203.0.113.7")) {
		t.Fatal("blocked before the server loaded the change")
	}
	if err := server.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if !server.Blocked(addr("203.0.113.7")) {
		t.Error("not blocked after Load")
	}
}

// BenchmarkBlocked measures the request-path check of an address that is
// not blocked (the common case) with no blocks and with 1,000.
func BenchmarkBlocked(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{0, 1000} {
		b.Run(fmt.Sprintf("blocks=%d", n), func(b *testing.B) {
			l := MustOpen(b, "", nil)
			var ps []netip.Prefix
			for i := range n {
				bits := []int{32, 24, 16, 28}[i%4]
				p, _ := netip.AddrFrom4([4]byte{100, byte(i >> 8), byte(i), 1}).Prefix(bits)
				ps = append(ps, p)
				if i%10 == 0 {
					ps = append(ps, netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i)}), 48))
				}
			}
			if n > 0 {
				if _, err := l.Add(ctx, ps, time.Time{}, "bench"); err != nil {
					b.Fatal(err)
				}
			}
			a := netip.MustParseAddr("198.51.100.7")
			b.ReportAllocs()
			for b.Loop() {
				if l.Blocked(a) {
					b.Fatal("blocked")
				}
			}
		})
	}
}
