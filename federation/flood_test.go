package federation_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/phivault/phivault/federation"
)

// Flood sizes: floodOneSource anonymous requests from one address, then
// floodPerSource from each of floodSources other addresses.
const (
	floodOneSource = 20000
	floodSources   = 5
	floodPerSource = 1000
	// maxFloodHeap bounds what a flood may leave on the heap. The table
	// of started logins this test replaced held 4 MiB after a flood (its
	// 10,000 slots full, and every later sign-in refused).
	maxFloodHeap = 1 << 20
)

// retainedHeap returns how many more bytes the heap holds after f than
// before, both measured after a garbage collection.
func retainedHeap(f func()) int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	before := m.HeapAlloc
	f()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc) - int64(before)
}

// TestStart_flood sends 25,000 anonymous start requests straight to the
// handler, with no per-source limit in front: 20,000 from one address and
// 1,000 from each of five others. Then a person signs in through the
// provider. Started logins travel sealed in the browser's cookie, so the
// flood is served, crowds out no one and leaves no state in the server.
func TestStart_flood(t *testing.T) {
	e := newFedEnv(t, config{})
	// start answers a start request from source, and 0 for a redirect
	// that does not hand the browser its flow in the cookie.
	start := func(source string) int {
		req := httptest.NewRequest("GET", e.rp.URL+"/oauth/federated/corp/start?pending=p1", nil)
		req.RemoteAddr = source + ":40000"
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		if c := rec.Result().Cookies(); rec.Code == http.StatusFound && (len(c) != 1 || c[0].Name != federation.CookieName || c[0].Value == "") {
			return 0
		}
		return rec.Code
	}
	start("192.0.2.1") // warm up: the provider is discovered once
	refused := map[int]int{}
	grown := retainedHeap(func() {
		for range floodOneSource {
			if code := start("203.0.113.7"); code != http.StatusFound {
				refused[code]++
			}
		}
		for i := range floodSources * floodPerSource {
			if code := start(fmt.Sprintf("198.51.100.%d", 1+i%floodSources)); code != http.StatusFound {
				refused[code]++
			}
		}
	})
	if len(refused) > 0 {
		t.Errorf("flood answers other than 302: %v (status: count)", refused)
	}
	if grown > maxFloodHeap {
		t.Errorf("the flood left %d bytes on the heap, want at most %d", grown, maxFloodHeap)
	}

	if status, body := e.signIn(e.browser(false), "p1", "alice@op"); status != http.StatusOK || body != "completed acc-alice" {
		t.Fatalf("sign-in after the flood = %d %q, want Complete for acc-alice", status, body)
	}
}
