package passkey_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/phivault/phivault/passkey"
)

// Flood sizes: floodOneSource anonymous requests from one address, then
// floodPerSource from each of floodSources other addresses.
const (
	floodOneSource = 20000
	floodSources   = 5
	floodPerSource = 1000
	// maxFloodHeap bounds what a flood may leave on the heap. The table
	// of begun ceremonies this test replaced held 5 MiB after a flood
	// (its 10,000 slots full, and every later sign-in refused).
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

// TestLoginBegin_flood sends 25,000 anonymous login/begin requests
// straight to the handler, with no per-source limit in front: 20,000 from
// one address and 1,000 from each of five others. Then a person signs in
// with a passkey. Begun ceremonies travel sealed to the browser, so the
// flood is served, crowds out no one and leaves no state in the server.
func TestLoginBegin_flood(t *testing.T) {
	e := newEnv(t)
	a := newSoftAuthenticator(t, rpID, origin)
	e.mustRegister("acc-alice", a)
	body, err := json.Marshal(map[string]string{"pending": "p1"})
	if err != nil {
		t.Fatal(err)
	}
	begin := func(source string) int {
		req := httptest.NewRequest("POST", "/oauth/passkey/login/begin", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = source + ":40000"
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		return rec.Code
	}
	begin("192.0.2.1") // warm up: lazily made state is not the flood's
	refused := map[int]int{}
	grown := retainedHeap(func() {
		for range floodOneSource {
			if code := begin("203.0.113.7"); code != http.StatusOK {
				refused[code]++
			}
		}
		for i := range floodSources * floodPerSource {
			if code := begin(fmt.Sprintf("198.51.100.%d", 1+i%floodSources)); code != http.StatusOK {
				refused[code]++
			}
		}
	})
	if len(refused) > 0 {
		t.Errorf("flood answers other than 200: %v (status: count)", refused)
	}
	if grown > maxFloodHeap {
		t.Errorf("the flood left %d bytes on the heap, want at most %d", grown, maxFloodHeap)
	}
	if n := passkey.UsedChallenges(e.h); n != 0 {
		t.Errorf("server holds %d challenges after an anonymous flood, want 0", n)
	}

	if status, body := e.login("p1", a); status != http.StatusFound {
		t.Fatalf("login after the flood = %d %s, want 302", status, body)
	}
	if got := e.completions(); len(got) != 1 || got[0].Account.ID != "acc-alice" {
		t.Fatalf("Complete calls = %+v, want one for acc-alice", got)
	}
	if n := passkey.UsedChallenges(e.h); n != 1 {
		t.Errorf("server holds %d challenges after one sign-in, want 1", n)
	}
}
