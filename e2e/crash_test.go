package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCrashDuringImport kills the server with SIGKILL in the middle of a
// concurrent import and checks, after a restart on the same data folder,
// that a 2xx meant durable and that no transaction is half there.
// It runs on SQLite and on PostgreSQL.
func TestCrashDuringImport(t *testing.T) {
	requireE2E(t)
	bundles := loadBundles(t, 0)
	forEachStore(t, func(t *testing.T, pg *pgStore) { crashDuringImport(t, bundles, pg) })
}

func crashDuringImport(t *testing.T, bundles []bundle, pg *pgStore) {
	// The kill moment is random; the seed is logged so a failure can be
	// replayed with PHIVAULT_E2E_SEED.
	seed := uint64(time.Now().UnixNano())
	if s := envSeed(t); s != 0 {
		seed = s
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	killAfter := int64(len(bundles)/4 + rng.IntN(len(bundles)/6+1)) // about a third of the way
	killDelay := time.Duration(rng.IntN(300)) * time.Millisecond
	t.Logf("PHIVAULT_E2E_SEED=%d: kill -9 %v after response %d of %d", seed, killDelay, killAfter, len(bundles))

	v := newVault(t, pg.env(t)...)
	v.start()

	type result struct {
		sent      bool
		status    int      // 0: no response
		locations []string // of a 2xx transaction-response
	}
	results := make([]result, len(bundles))
	var answered atomic.Int64
	killed := make(chan struct{})
	var killOnce sync.Once
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range jobs {
				results[i].sent = true
				r, err := v.send(context.Background(), http.MethodPost, "", bundles[i].data)
				if err != nil {
					continue // in flight when the server died
				}
				results[i].status = r.status
				if r.status/100 == 2 {
					results[i].locations = locations(t, bundles[i].name, r.body)
				}
				if answered.Add(1) == killAfter {
					killOnce.Do(func() {
						go func() {
							time.Sleep(killDelay)
							v.cmd.Process.Kill()
							close(killed)
						}()
					})
				}
			}
		})
	}
feed:
	for i := range bundles {
		select {
		case <-killed:
			break feed
		default:
		}
		select {
		case jobs <- i:
		case <-killed:
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case <-killed:
	default:
		t.Fatal("the import finished before the kill; nothing was tested")
	}
	<-v.done
	v.client.CloseIdleConnections()

	var acked, inFlight, unsent []int
	for i, r := range results {
		switch {
		case r.status/100 == 2:
			acked = append(acked, i)
		case r.status != 0:
			t.Errorf("%s: HTTP %d before the kill", bundles[i].name, r.status)
		case r.sent:
			inFlight = append(inFlight, i)
		default:
			unsent = append(unsent, i)
		}
	}
	t.Logf("%d bundles acknowledged, %d in flight at the kill, %d not sent", len(acked), len(inFlight), len(unsent))
	if len(acked) == 0 {
		t.Fatal("no bundle was acknowledged before the kill")
	}

	// The restart must be clean: it listens, and logs no error.
	logFrom := v.stderr.Len()
	v.start()

	// Every acknowledged resource reads back as version 1.
	var locs []string
	for _, i := range acked {
		locs = append(locs, results[i].locations...)
	}
	for _, msg := range v.readAll(locs, 8) {
		t.Error(msg)
	}

	// Acknowledged patients are there once; unacknowledged ones are all
	// there or not at all (a transaction is atomic), and unsent ones are not.
	patients := 0
	for _, i := range acked {
		if id := v.patientByIdentifier(bundles[i]); id == "" {
			t.Errorf("%s: acknowledged, but its Patient is missing after the restart", bundles[i].name)
		} else {
			patients++
		}
	}
	for _, i := range inFlight {
		id := v.patientByIdentifier(bundles[i])
		if id == "" {
			continue
		}
		patients++
		for _, typ := range []string{"Encounter", "Observation", "Condition", "Procedure"} {
			want := bundles[i].types[typ]
			if got := v.count(typ + "?patient=Patient/" + id); got != want {
				t.Errorf("%s: committed without a response, but holds %d of its %d %s resources: a torn transaction", bundles[i].name, got, want, typ)
			}
		}
	}
	for _, i := range unsent {
		if id := v.patientByIdentifier(bundles[i]); id != "" {
			t.Errorf("%s: never sent, yet its Patient exists", bundles[i].name)
		}
	}
	if got := v.count("Patient"); got != patients {
		t.Errorf("%d Patients after the restart, want %d", got, patients)
	}
	t.Logf("%d resources read back; %d of %d in-flight bundles had committed", len(locs), patients-len(acked), len(inFlight))

	v.stop()
	if restartLog := v.stderr.Bytes()[logFrom:]; strings.Contains(string(restartLog), `"level":"ERROR"`) {
		t.Errorf("the restarted server logged errors:\n%s", tail(restartLog, 20))
	}
}

// envSeed returns PHIVAULT_E2E_SEED, or 0 when unset.
func envSeed(t *testing.T) uint64 {
	s := os.Getenv("PHIVAULT_E2E_SEED")
	if s == "" {
		return 0
	}
	var seed uint64
	if _, err := fmt.Sscan(s, &seed); err != nil {
		t.Fatalf("PHIVAULT_E2E_SEED=%q: %v", s, err)
	}
	return seed
}

// locations returns the entry locations of a transaction-response, as
// "Type/id" (without the version).
func locations(t *testing.T, name string, body []byte) []string {
	var b struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Response struct {
				Location string `json:"location"`
			} `json:"response"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.ResourceType != "Bundle" {
		t.Errorf("%s: 2xx without a Bundle", name)
		return nil
	}
	var out []string
	for i, e := range b.Entry {
		ref := e.Response.Location
		if j := strings.LastIndex(ref, "/fhir/"); j >= 0 {
			ref = ref[j+len("/fhir/"):]
		}
		if j := strings.Index(ref, "/_history/"); j >= 0 {
			ref = ref[:j]
		}
		if parts := strings.Split(ref, "/"); len(parts) != 2 || parts[0] == "" || parts[1] == "" {
			t.Errorf("%s: entry %d: location %q is not Type/id[/_history/v]", name, i, e.Response.Location)
			continue
		}
		out = append(out, ref)
	}
	return out
}

// readAll reads every Type/id with workers requests in flight and returns
// a message for each that is not 200 with meta.versionId "1".
func (v *vault) readAll(refs []string, workers int) []string {
	var (
		mu     sync.Mutex
		failed []string
		wg     sync.WaitGroup
	)
	jobs := make(chan string)
	for range workers {
		wg.Go(func() {
			for ref := range jobs {
				msg := ""
				r, err := v.send(context.Background(), http.MethodGet, "/"+ref, nil)
				switch {
				case err != nil:
					msg = fmt.Sprintf("GET %s: %v", ref, err)
				case r.status != http.StatusOK:
					msg = fmt.Sprintf("GET %s: HTTP %d after an acknowledged write", ref, r.status)
				default:
					var res struct {
						Meta struct {
							VersionID string `json:"versionId"`
						} `json:"meta"`
					}
					if json.Unmarshal(r.body, &res) != nil || res.Meta.VersionID != "1" {
						msg = fmt.Sprintf("GET %s: meta.versionId %q, want \"1\"", ref, res.Meta.VersionID)
					}
				}
				if msg != "" {
					mu.Lock()
					failed = append(failed, msg)
					mu.Unlock()
				}
			}
		})
	}
	for _, ref := range refs {
		jobs <- ref
	}
	close(jobs)
	wg.Wait()
	if len(failed) > 10 {
		failed = append(failed[:10], fmt.Sprintf("... and %d more", len(failed)-10))
	}
	return failed
}

// patientByIdentifier returns the id of b's Patient, found by its Synthea
// identifier, or "" when there is none. More than one is an error.
func (v *vault) patientByIdentifier(b bundle) string {
	v.t.Helper()
	q := url.QueryEscape(syntheaIdentifierSystem + "|" + b.patient.syntheaID())
	r := v.do(http.MethodGet, "/Patient?identifier="+q, nil)
	var res struct {
		Entry []struct {
			Resource struct {
				ID string `json:"id"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &res) != nil {
		v.t.Fatalf("%s: identifier search: HTTP %d: %s", b.name, r.status, r.body)
	}
	switch len(res.Entry) {
	case 0:
		return ""
	case 1:
		return res.Entry[0].Resource.ID
	}
	v.t.Errorf("%s: %d Patients share its identifier", b.name, len(res.Entry))
	return res.Entry[0].Resource.ID
}
