// Package perf holds phivault's benchmark suite, the source of the figures in
// docs/PERFORMANCE.md. It has no non-test code.
//
// The benchmarks wire the real stack the way `phivault serve` does (SQLite or
// PostgreSQL store, file keyring, envelope sealer, vault service, API handler,
// HTTPS server with a self-signed certificate) and run it twice: encrypted,
// and with internal/plainseal, a sealer that does not encrypt and exists only
// so that the cost of encryption can be measured. A third import baseline
// writes the same JSON into a plain SQLite table with the same durability.
//
// Run them with
//
//	go test -run '^$' -bench . -benchtime 1x -count 5 ./internal/perf/
//
// Each iteration is bounded to a few seconds. BenchmarkImport/postgres-* needs
// PHIVAULT_TEST_POSTGRES_URL; the Synthea import needs the patients-100
// archive (see internal/testenv). TestPerfStackWorks runs the wiring once in
// the normal test suite so that the benchmarks cannot rot.
package perf
