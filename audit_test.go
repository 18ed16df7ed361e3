package phivault_test

import (
	"context"
	"testing"

	"github.com/phivault/phivault"
)

func TestRequestSource(t *testing.T) {
	bg := context.Background()
	withSource := phivault.WithRequestInfo(bg, phivault.RequestInfo{Source: "198.51.100.9"})
	withoutSource := phivault.WithRequestInfo(bg, phivault.RequestInfo{ID: "0011223344556677"})
	for _, tt := range []struct {
		ctx        context.Context
		remoteAddr string
		want       string
	}{
		{bg, "192.0.2.7:51234", "192.0.2.7"},
		{bg, "[2001:db8::1]:443", "2001:db8::1"},
		{bg, "@", "@"}, // a Unix socket peer: no port to drop
		{withoutSource, "192.0.2.7:51234", "192.0.2.7"},
		{withSource, "192.0.2.7:51234", "198.51.100.9"}, // the server's reading wins
	} {
		if got := phivault.RequestSource(tt.ctx, tt.remoteAddr); got != tt.want {
			t.Errorf("RequestSource(%q) = %q, want %q", tt.remoteAddr, got, tt.want)
		}
	}
}
