// Package e2e holds end-to-end tests that build the real phivault binary,
// run it on a free port with its own data folder, and drive it over HTTPS
// with real clients: fhir-kit-client (Node), the binary's own import
// command, and Go's net/http.
//
// The tests are slow, so they run only when PHIVAULT_E2E=1 (.ci/run sets
// it); otherwise they skip. See README.md.
package e2e
