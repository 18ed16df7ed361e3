package phivault_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPackageDocs checks that every package of the module has exactly one
// package doc comment, starting "Package x" (or "Command x" for main).
func TestPackageDocs(t *testing.T) {
	// docs[dir][pkg] lists the doc comments of the package's non-test files.
	docs := map[string]map[string][]string{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			t.Fatal(err)
		}
		dir, name := filepath.Dir(path), f.Name.Name
		if docs[dir] == nil {
			docs[dir] = map[string][]string{}
		}
		if f.Doc != nil {
			docs[dir][name] = append(docs[dir][name], f.Doc.Text())
		} else if docs[dir][name] == nil {
			docs[dir][name] = []string{}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) < 10 {
		t.Fatalf("found %d package folders; the walk is broken", len(docs))
	}
	for dir, pkgs := range docs {
		for name, docs := range pkgs {
			want := "Package " + name
			if name == "main" {
				want = "Command "
			}
			switch {
			case len(docs) == 0:
				t.Errorf("%s: package %s has no doc comment", dir, name)
			case len(docs) > 1:
				t.Errorf("%s: package %s has %d doc comments, want one", dir, name, len(docs))
			case !strings.HasPrefix(docs[0], want):
				t.Errorf("%s: doc comment starts %q, want %q", dir, firstLine(docs[0]), want)
			}
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestDependencies checks that deps.txt lists exactly the non-standard
// packages the phivault binary links, so every new dependency shows up in
// review. Regenerate it with:
//
//	go list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' ./cmd/phivault | sort > deps.txt
func TestDependencies(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./cmd/phivault")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		// go test runs with the go command at hand: a failing go list means
		// the binary does not build, which must not pass as a skip.
		t.Fatalf("go list -deps ./cmd/phivault: %v\n%s", err, stderr.String())
	}
	want, err := os.ReadFile("deps.txt")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(string(out))
	slices.Sort(got)
	if !slices.Equal(got, strings.Fields(string(want))) {
		t.Errorf("deps.txt is out of date; regenerate it (see the test's comment) and review the new dependencies")
	}
	for _, denied := range []string{"github.com/phivault/phivault/internal/plainseal", "github.com/google/fhir"} {
		if strings.Contains(string(out), denied) {
			t.Errorf("the phivault binary links %s, which only tests and benchmarks may use", denied)
		}
	}
}
