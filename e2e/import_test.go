package e2e_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestImportIdempotent runs the same "phivault import" twice with one
// journal: the second run skips every bundle and the data does not change.
func TestImportIdempotent(t *testing.T) {
	requireE2E(t)
	bundles := loadBundles(t, 3)
	in := t.TempDir()
	resources := 0
	for _, b := range bundles {
		if err := os.WriteFile(filepath.Join(in, b.name), b.data, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, n := range b.types {
			resources += n
		}
	}
	journal := filepath.Join(t.TempDir(), "import.journal")

	v := newVault(t)
	v.start()
	run := func() (imported, bundlesSent, skipped, failed int) {
		t.Helper()
		stdout, stderr, err := v.importer("-journal", journal, in)
		if err != nil {
			t.Fatalf("phivault import: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, tail(stderr, 20))
		}
		m := importSummary.FindSubmatch(stdout)
		if m == nil {
			t.Fatalf("phivault import printed no summary:\n%s", stdout)
		}
		atoi := func(b []byte) int { n, _ := strconv.Atoi(string(b)); return n }
		return atoi(m[1]), atoi(m[2]), atoi(m[3]), atoi(m[4])
	}

	imported, sent, skipped, failed := run()
	if imported != resources || sent != len(bundles) || skipped != 0 || failed != 0 {
		t.Fatalf("first import: %d resources in %d bundles, %d skipped, %d failed; want %d in %d, 0, 0",
			imported, sent, skipped, failed, resources, len(bundles))
	}
	patients := v.count("Patient")
	observations := v.count("Observation")
	if patients != len(bundles) {
		t.Fatalf("%d Patients after the first import, want %d", patients, len(bundles))
	}

	imported, sent, skipped, failed = run()
	if imported != 0 || sent != 0 || skipped != resources || failed != 0 {
		t.Errorf("second import: %d resources in %d bundles, %d skipped, %d failed; want 0 in 0, %d skipped, 0 failed",
			imported, sent, skipped, failed, resources)
	}
	if got := v.count("Patient"); got != patients {
		t.Errorf("%d Patients after the second import, want %d", got, patients)
	}
	if got := v.count("Observation"); got != observations {
		t.Errorf("%d Observations after the second import, want %d", got, observations)
	}
	v.stop()
}

// importSummary matches the last line "phivault import" prints.
var importSummary = regexp.MustCompile(`imported (\d+) resources in (\d+) bundles in \S+ \([^)]*\); skipped (\d+) already imported[^;]*; (\d+) bundles failed`)

// TestImportFreshServer imports into a server, replaces the server with a
// fresh one (new data folder, same URL) and imports again with the default
// journal: the journal belongs to the first vault, so everything is
// imported into the second, and the summary says so.
func TestImportFreshServer(t *testing.T) {
	requireE2E(t)
	bundles := loadBundles(t, 2)
	in := t.TempDir()
	for _, b := range bundles {
		if err := os.WriteFile(filepath.Join(in, b.name), b.data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cache := t.TempDir() // the importer's user cache dir, where the default journal lives
	run := func(v *vault) string {
		t.Helper()
		cmd := exec.Command(binary, "import", "-url", v.url, "-cacert", v.cacert, "-q", in)
		cmd.Env = v.env("PHIVAULT_TOKEN="+v.token, "XDG_CACHE_HOME="+cache, "HOME="+cache)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("phivault import: %v\n%s", err, out)
		}
		return string(out)
	}

	first := newVault(t)
	first.start()
	run(first)
	if got := first.count("Patient"); got != len(bundles) {
		t.Fatalf("%d Patients after the first import, want %d", got, len(bundles))
	}
	addr := strings.TrimSuffix(strings.TrimPrefix(first.url, "https://"), "/fhir")
	first.stop()

	second := newVault(t)
	second.addr = addr // the same URL
	second.start()
	if second.url != first.url {
		t.Fatalf("second server at %s, want %s", second.url, first.url)
	}
	out := run(second)
	m := importSummary.FindStringSubmatch(out)
	if m == nil || m[2] != strconv.Itoa(len(bundles)) || m[3] != "0" {
		t.Errorf("import into a fresh server at the same URL: %q, want %d bundles imported and none skipped", out, len(bundles))
	}
	if got := second.count("Patient"); got != len(bundles) {
		t.Errorf("%d Patients in the fresh server after the import, want %d", got, len(bundles))
	}

	// Importing again into the second server skips everything, confirmed.
	out = run(second)
	if m := importSummary.FindStringSubmatch(out); m == nil || m[2] != "0" {
		t.Errorf("second import into the same server: %q, want nothing sent", out)
	}
	second.stop()
}
