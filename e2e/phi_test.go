package e2e_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/phivault/phivault/internal/testenv"
)

// TestNoPHIAtRest imports the 100 Synthea patients with "phivault import"
// and looks for their names, identifiers, address lines and birth dates in
// every file of the data folder and the server's temp folder, while the
// server runs and after it stops, and in every line the server and the
// importer wrote. Nothing may be found. On PostgreSQL, whose data folder
// is not phivault's, it scans what a reader of the database gets instead: a
// pg_dump of the vault's schema, taken while serving and after the stop.
func TestNoPHIAtRest(t *testing.T) {
	requireE2E(t)
	bundles := loadBundles(t, 0)
	forEachStore(t, func(t *testing.T, pg *pgStore) { noPHIAtRest(t, bundles, pg) })
}

func noPHIAtRest(t *testing.T, bundles []bundle, pg *pgStore) {
	needles := phiNeedles(bundles)
	sc, err := newScanner(needles, 4<<20)
	if err != nil {
		t.Fatal(err)
	}

	// Positive control: every needle must be found in the source bundles,
	// or a broken scanner would pass silently.
	inSource := map[int]bool{}
	for _, b := range bundles {
		found, err := sc.scan(bytes.NewReader(b.data))
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range found {
			inSource[i] = true
		}
	}
	for i, n := range needles {
		if !inSource[i] {
			t.Errorf("scanner control: %s (needle %d) not found in the Synthea source", n.label, i)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d needles from %d patients, all found in the source bundles", len(needles), len(bundles))

	v := newVault(t, pg.env(t)...)
	v.start()
	archive := testenv.SyntheaArchive(t, syntheaArchive)
	stdout, stderr, err := v.importer("-journal", "off", archive)
	if err != nil {
		t.Fatalf("phivault import: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, tail(stderr, 20))
	}
	if want := fmt.Sprintf(" in %d bundles ", len(bundles)); !bytes.Contains(stdout, []byte(want)) || !bytes.Contains(stdout, []byte(" 0 bundles failed")) {
		t.Fatalf("phivault import did not report %d bundles and no failures:\n%s", len(bundles), stdout)
	}
	// The records are there and searchable, so an empty scan means encrypted,
	// not missing.
	if got := v.count("Patient"); got != len(bundles) {
		t.Fatalf("%d Patients after the import, want %d", got, len(bundles))
	}
	for _, b := range bundles[:3] {
		if v.patientByIdentifier(b) == "" {
			t.Fatalf("%s: Patient not found by identifier after the import", b.name)
		}
	}

	var hits []hit
	var scanned int64
	var dumps string // PostgreSQL: a pg_dump of the vault's schema, taken while serving
	if pg != nil {
		// Positive control: a birth date stored in a byte string column is
		// found in a dump.
		control := t.TempDir()
		pg.dumpControl(t, control, []byte(bundles[0].patient.BirthDate))
		found, _, err := sc.scanFiles(control, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(found) == 0 {
			t.Fatal("scanner control: a birth date in a bytea column was not found in its pg_dump")
		}
		dumps = t.TempDir()
		pg.dump(t, dumps, "pg_dump.sql")
	}
	scanDirs := func(when string) {
		dirs := []string{v.dir, v.tmp}
		if dumps != "" && when == "while serving" {
			dirs = append(dirs, dumps)
		}
		for _, dir := range dirs {
			h, n, err := sc.scanFiles(dir, " ("+when+")")
			if err != nil {
				t.Fatal(err)
			}
			hits, scanned = append(hits, h...), scanned+n
		}
	}
	scanDirs("while serving")
	v.stop()
	scanDirs("after stop")
	for _, out := range []struct {
		name string
		data []byte
	}{
		{"serve stdout", v.stdout.Bytes()},
		{"serve stderr", v.stderr.Bytes()},
		{"import stdout", stdout},
		{"import stderr", stderr},
	} {
		found, err := sc.scan(bytes.NewReader(out.data))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range sc.labels(found) {
			hits = append(hits, hit{label: l, where: out.name})
		}
		scanned += int64(len(out.data))
	}
	t.Logf("scanned %.1f MiB", float64(scanned)/(1<<20))
	for i, h := range hits {
		if i == 20 {
			t.Errorf("... and %d more", len(hits)-20)
			break
		}
		t.Error(h)
	}
}

// phiNeedles returns the needles for the PHI of the bundles' Patients:
// family and given names, identifier values of 6 bytes or more, address
// lines and birth dates. Each distinct value gets a numbered label.
func phiNeedles(bundles []bundle) []needle {
	var out []needle
	seen := map[string]bool{}
	numbers := map[string]int{}
	add := func(kind, value string, needles func(label, value string) []needle) {
		if value == "" || seen[kind+"\x00"+value] {
			return
		}
		seen[kind+"\x00"+value] = true
		numbers[kind]++
		out = append(out, needles(fmt.Sprintf("%s #%d", kind, numbers[kind]), value)...)
	}
	exact := func(label, value string) []needle { return []needle{exactNeedle(label, value)} }
	for _, b := range bundles {
		p := &b.patient
		for _, n := range p.Name {
			add("family name", n.Family, nameNeedles)
			for _, g := range n.Given {
				add("given name", g, nameNeedles)
			}
		}
		for _, id := range p.Identifier {
			if len(id.Value) >= 6 {
				add("identifier", id.Value, exact)
			}
		}
		for _, a := range p.Address {
			for _, l := range a.Line {
				add("address line", l, exact)
			}
		}
		add("birth date", p.BirthDate, exact)
	}
	return out
}

// TestScanner checks the PHI scanner itself on planted strings, across
// chunk boundaries, in random bytes. It needs no server and always runs.
func TestScanner(t *testing.T) {
	needles := slices.Concat(
		nameNeedles("short name", "Toy"),
		nameNeedles("six-byte name", "Kuphal"),
		nameNeedles("long name", "Bergstrom"),
		[]needle{exactNeedle("identifier", "999-22-1962")},
	)
	const chunk = 1 << 10
	sc, err := newScanner(needles, chunk)
	if err != nil {
		t.Fatal(err)
	}
	noise := make([]byte, 10*chunk)
	rand.NewChaCha8([32]byte{'e', '2', 'e'}).Read(noise)
	// Keep the noise free of the JSON bytes a plant relies on.
	for i, c := range noise {
		if opensJSONValue(c) || c == '"' {
			noise[i] = 0
		}
	}

	tests := []struct {
		name  string
		plant string
		want  []string
	}{
		{"nothing", "", nil},
		{"short name bare", "Toy", nil},
		{"short name in JSON", `"family":"Toy"`, []string{"short name"}},
		{"short name in JSON, other case", `"given": ["TOY"]`, []string{"short name"}},
		{"short name quoted in binary", `"Toy"`, nil},
		{"six-byte name exact", "Kuphal", []string{"six-byte name"}},
		{"six-byte name other case", "KUPHAL", nil},
		{"six-byte name lowercased in JSON", `:"kuphal"`, []string{"six-byte name"}},
		{"long name other case", "bergSTROM", []string{"long name"}},
		{"identifier", "999-22-1962", []string{"identifier"}},
		{"identifier prefix", "999-22-196", nil},
		{"two at once", "Bergstrom\x00999-22-1962", []string{"identifier", "long name"}},
	}
	for _, tt := range tests {
		// At the start, across the first chunk boundary, and at the end.
		for _, at := range []int{0, chunk - len(tt.plant)/2, len(noise) - len(tt.plant)} {
			data := bytes.Clone(noise)
			copy(data[at:], tt.plant)
			found, err := sc.scan(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			got := sc.labels(found)
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("%s at %d: found %q, want %q", tt.name, at, got, tt.want)
			}
		}
	}
}

// TestScannerFiles checks that scanFiles reaches files in subfolders and
// names them without the value.
func TestScannerFiles(t *testing.T) {
	sc, err := newScanner(nameNeedles("family name #1", "Bergstrom"), 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(filepath.Join(root, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "clean.db"), []byte("ciphertext only"), 0o600)
	os.WriteFile(filepath.Join(root, "sub", "leak.tmp"), []byte(`{"family":"BERGSTROM"}`), 0o600)
	hits, _, err := sc.scanFiles(root, " (test)")
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 1 {
		t.Fatalf("hits = %v, want one", hits)
	}
	want := regexp.MustCompile(`^family name #1 found in data/sub/leak\.tmp \(test\)$`)
	if got := hits[0].String(); !want.MatchString(got) {
		t.Errorf("hit = %q, want it to match %s", got, want)
	}
}
