package server

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/phivault/phivault"
)

// source returns the address r came from, for the request's
// phivault.RequestInfo: its peer's address, unless the peer is one of
// Config.TrustedProxies. Then it is the right-most address of the
// X-Forwarded-For header that is not a trusted proxy: each proxy appends
// the address it received the request from, so that one was seen by our
// own proxy, and everything left of it may have been written by the
// client. If every forwarded address is a trusted proxy, it is the
// left-most of them; an entry that is not an address ends the walk at the
// trusted address to its right.
func (s *Server) source(r *http.Request) string {
	peer := phivault.RequestSource(r.Context(), r.RemoteAddr)
	if len(s.cfg.TrustedProxies) == 0 {
		return peer
	}
	src, err := netip.ParseAddr(peer)
	if err != nil || !s.trusted(src) {
		return peer
	}
	src = src.Unmap().WithZone("")
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			break
		}
		src = a
		if !s.trusted(a) {
			break
		}
	}
	return src.String()
}

// trusted reports whether a is in one of Config.TrustedProxies.
func (s *Server) trusted(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop reads one X-Forwarded-For entry: an address, or an address
// and port as some proxies write it.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone(""), true
}

// ParsePrefixes reads TrustedProxies from a comma-separated list of
// networks (10.0.0.0/8, 2001:db8:1::/48) and single addresses (taken as
// /32 or /128). A network of every address (0.0.0.0/0, ::/0) is refused:
// it would let any client choose its own source address.
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		var p netip.Prefix
		if strings.Contains(f, "/") {
			var err error
			if p, err = netip.ParsePrefix(f); err != nil {
				return nil, fmt.Errorf("server: trusted proxy %q is not a network: %w", f, err)
			}
		} else {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("server: trusted proxy %q is not an address: %w", f, err)
			}
			if a.Zone() != "" {
				return nil, fmt.Errorf("server: trusted proxy %q has a zone", f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Bits() == 0 {
			return nil, fmt.Errorf("server: trusted proxy %q would trust every client", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
