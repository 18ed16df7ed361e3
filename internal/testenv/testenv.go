// Package testenv finds test inputs shared by several packages' tests: the
// repository root and the Synthea R4 sample bundles.
package testenv

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// RepoRoot returns the folder holding go.mod, walking up from the working
// directory.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// SyntheaArchive returns the path of a Synthea archive such as
// "patients-100.tar.gz", from PHIVAULT_SYNTHEA_DIR or ../shared/data/synthea-r4
// beside the repository. It skips the test with a message when absent.
func SyntheaArchive(tb testing.TB, name string) string {
	tb.Helper()
	dir := os.Getenv("PHIVAULT_SYNTHEA_DIR")
	if dir == "" {
		dir = filepath.Join(RepoRoot(tb), "..", "shared", "data", "synthea-r4")
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err != nil {
		tb.Skipf("Synthea data %s not found; set PHIVAULT_SYNTHEA_DIR to the folder holding it", path)
	}
	return path
}

// SyntheaBundles calls fn with each pNNN.json bundle in a Synthea archive,
// in archive order, reading straight from the .tar.gz.
func SyntheaBundles(tb testing.TB, name string, fn func(name string, data []byte)) {
	tb.Helper()
	f, err := os.Open(SyntheaArchive(tb, name))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		tb.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			tb.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg || !strings.HasSuffix(h.Name, ".json") {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			tb.Fatal(err)
		}
		fn(filepath.Base(h.Name), data)
	}
}

// SampleStep returns 1 to test every item of a large corpus, or 10 to test
// a sample in -short mode and under the race detector, which is ~10x slower.
// The full corpus still runs in the ordinary test run.
func SampleStep() int {
	if testing.Short() {
		return 10
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				return 10
			}
		}
	}
	return 1
}
