package perf_test

import (
	"context"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/phivault/phivault/internal/testenv"
	"github.com/phivault/phivault/synth"
)

const plainsealPath = "github.com/phivault/phivault/internal/plainseal"

// TestPerfStackWorks runs the benchmarks' wiring once, small, so that it
// cannot rot between benchmark runs.
func TestPerfStackWorks(t *testing.T) {
	ctx := context.Background()
	for _, m := range []mode{encrypted, plaintext, audited} {
		t.Run(string(m), func(t *testing.T) {
			s := openStack(t, m, 2)
			tg := seed(t, s.svc, 2)
			for _, paths := range [][]string{tg.readPaths(), tg.identifierPaths(), tg.observationPaths()} {
				l := s.hammer(t, paths, 4, 2)
				if len(l.durs) != 4 {
					t.Fatalf("hammer made %d requests, want 4", len(l.durs))
				}
			}
			if m == audited { // the process-client variant of BenchmarkReadAudit
				c := startLoadClient(t, s, tg.readPaths(), 2)
				for range 2 {
					if l := c.run(t, 6); len(l.durs) != 6 || l.elapsed <= 0 {
						t.Fatalf("load client made %d requests in %v, want 6", len(l.durs), l.elapsed)
					}
				}
			}
			_, body, err := s.do(ctx, http.MethodGet, tg.identifierPaths()[0], nil)
			if err != nil || !strings.Contains(string(body), tg.patients[0]) {
				t.Fatalf("identifier search did not find the patient: %v", err)
			}
			status, _, err := s.do(ctx, http.MethodPost, "", firstBundle(t))
			if err != nil || status != http.StatusOK {
				t.Fatalf("POST bundle = %d, %v", status, err)
			}
		})
	}
	t.Run("postgres-encrypted", func(t *testing.T) {
		s := openPostgresStack(t, encrypted, 2)
		tg := seed(t, s.svc, 2)
		s.settle(t)
		for _, paths := range [][]string{tg.readPaths(), tg.identifierPaths(), tg.observationPaths()} {
			if l := s.hammer(t, paths, 4, 2); len(l.durs) != 4 {
				t.Fatalf("hammer made %d requests, want 4", len(l.durs))
			}
		}
		_, body, err := s.do(ctx, http.MethodGet, tg.observationPaths()[0], nil)
		if err != nil || !strings.Contains(string(body), tg.patients[0]) {
			t.Fatalf("observation search did not find the patient's observations: %v", err)
		}
	})
	t.Run("rawsqlite", func(t *testing.T) {
		raw := openRaw(t)
		if err := importAll([][]byte{firstBundle(t)}, 1, func(b []byte) error { return raw.importBundle(ctx, b) }); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := raw.db.QueryRow(`SELECT count(*) FROM resource`).Scan(&n); err != nil || n == 0 {
			t.Fatalf("raw import stored %d rows: %v", n, err)
		}
	})
}

func firstBundle(t *testing.T) []byte {
	for b, err := range synth.Bundles(synth.Options{Seed: 2, Patients: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Fatal("no bundle")
	return nil
}

// TestPlainsealOnlyInTests fails if a non-test package of the module, or
// anything linked into cmd/phivault, imports internal/plainseal.
func TestPlainsealOnlyInTests(t *testing.T) {
	root := testenv.RepoRoot(t)
	goList := func(args ...string) []string {
		cmd := exec.Command("go", append([]string{"list", "-e"}, args...)...)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list %v: %v", args, err)
		}
		return strings.Split(strings.TrimSpace(string(out)), "\n")
	}
	for _, dep := range goList("-deps", "./cmd/phivault") {
		if dep == plainsealPath {
			t.Errorf("cmd/phivault links %s", plainsealPath)
		}
	}
	for _, line := range goList("-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...") {
		pkg, imports, _ := strings.Cut(line, " ")
		for _, imp := range strings.Fields(imports) {
			if imp == plainsealPath {
				t.Errorf("non-test package %s imports %s", pkg, plainsealPath)
			}
		}
	}
}
