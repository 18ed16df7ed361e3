package perf_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/testenv"
	"github.com/phivault/phivault/vault"
)

// Load shape shared by the HTTP benchmarks.
const (
	benchPatients = 50 // synthetic patients seeded before a read or search run
	benchConns    = 16 // concurrent keep-alive connections
	inflight      = 4  // bundles imported concurrently
)

// synthea returns the patients-100 bundles and how many resources they hold.
func synthea(b *testing.B) ([][]byte, int) {
	var bundles [][]byte
	n := 0
	testenv.SyntheaBundles(b, "patients-100.tar.gz", func(_ string, data []byte) {
		entries, err := bundleEntries(data)
		if err != nil {
			b.Fatal(err)
		}
		n += len(entries)
		bundles = append(bundles, data)
	})
	return bundles, n
}

// BenchmarkImport imports the 100 Synthea patients-100 transaction bundles
// (28,041 resources) into a fresh database per iteration, 4 bundles in
// flight, and reports resources/s.
func BenchmarkImport(b *testing.B) {
	bundles, resources := synthea(b)
	ctx := context.Background()
	run := func(b *testing.B, open func(b *testing.B) func([]byte) error) {
		var total time.Duration
		for b.Loop() {
			b.StopTimer()
			fn := open(b)
			b.StartTimer()
			t0 := time.Now()
			if err := importAll(bundles, inflight, fn); err != nil {
				b.Fatal(err)
			}
			total += time.Since(t0)
		}
		b.ReportMetric(float64(resources*b.N)/total.Seconds(), "resources/s")
		b.ReportMetric(0, "ns/op")
	}
	for _, m := range []mode{encrypted, plaintext} {
		b.Run(string(m), func(b *testing.B) {
			run(b, func(b *testing.B) func([]byte) error {
				svc := openService(b, m)
				return func(data []byte) error { _, err := svc.Bundle(ctx, data, bundleBase); return err }
			})
		})
	}
	b.Run("rawsqlite", func(b *testing.B) {
		run(b, func(b *testing.B) func([]byte) error {
			raw := openRaw(b)
			return func(data []byte) error { return raw.importBundle(ctx, data) }
		})
	})
	for _, m := range []mode{encrypted, plaintext} {
		b.Run("https-"+string(m), func(b *testing.B) {
			run(b, func(b *testing.B) func([]byte) error {
				s := openStack(b, m, inflight)
				return func(data []byte) error {
					status, body, err := s.do(ctx, http.MethodPost, "", data)
					if err == nil && status != http.StatusOK {
						b.Errorf("POST bundle: HTTP %d: %.300s", status, body)
					}
					return err
				}
			})
		})
	}
	for _, m := range []mode{encrypted, plaintext} {
		b.Run("postgres-"+string(m), func(b *testing.B) {
			dbURL := postgresURL(b)
			run(b, func(b *testing.B) func([]byte) error {
				db := openPostgres(b, dbURL)
				svc := vault.New(db, newSealer(b, db, m))
				return func(data []byte) error { _, err := svc.Bundle(ctx, data, bundleBase); return err }
			})
		})
	}
}

// BenchmarkRead reads patients by id over HTTPS with keep-alive.
func BenchmarkRead(b *testing.B) {
	for _, m := range []mode{encrypted, plaintext} {
		b.Run(string(m), func(b *testing.B) {
			s := openStack(b, m, benchConns)
			paths := seed(b, s.svc, benchPatients).readPaths()
			s.hammer(b, paths, benchConns*10, benchConns) // open the connections
			var runs []load
			for b.Loop() {
				runs = append(runs, s.hammer(b, paths, 20000, benchConns))
			}
			report(b, runs)
		})
	}
}

// BenchmarkSearch runs the two equality searches of the requirements over
// HTTPS with keep-alive.
func BenchmarkSearch(b *testing.B) {
	queries := []struct {
		name     string
		paths    func(*target) []string
		requests int // per iteration: a few seconds
	}{
		{"identifier", (*target).identifierPaths, 10000},
		{"observation-patient-code", (*target).observationPaths, 2000},
	}
	for _, q := range queries {
		b.Run(q.name, func(b *testing.B) {
			for _, m := range []mode{encrypted, plaintext} {
				b.Run(string(m), func(b *testing.B) {
					s := openStack(b, m, benchConns)
					paths := q.paths(seed(b, s.svc, benchPatients))
					s.hammer(b, paths, benchConns*10, benchConns)
					var runs []load
					for b.Loop() {
						runs = append(runs, s.hammer(b, paths, q.requests, benchConns))
					}
					report(b, runs)
				})
			}
		})
	}
}
