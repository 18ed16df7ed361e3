// Package testenv finds test inputs shared by several packages' tests: the
// repository root and the Synthea R4 sample bundles.
package testenv

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"go/build"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// RepoRoot returns the folder holding go.mod, walking up from the working
// directory.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := Root()
	if err != nil {
		tb.Fatal(err)
	}
	return root
}

// Root is RepoRoot for code without a testing.TB, such as TestMain.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// SyntheaPath returns the path of a Synthea archive such as
// "patients-100.tar.gz", from PHIVAULT_SYNTHEA_DIR or ../shared/data/synthea-r4
// beside the repository. The error wraps fs.ErrNotExist when it is absent.
func SyntheaPath(name string) (string, error) {
	dir := os.Getenv("PHIVAULT_SYNTHEA_DIR")
	if dir == "" {
		root, err := Root()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "..", "shared", "data", "synthea-r4")
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("synthea data %s: %w; set PHIVAULT_SYNTHEA_DIR to the folder holding it", path, err)
	}
	return path, nil
}

// SyntheaArchive is SyntheaPath for tests: it skips the test with a message
// when the archive is absent.
func SyntheaArchive(tb testing.TB, name string) string {
	tb.Helper()
	path, err := SyntheaPath(name)
	if errors.Is(err, fs.ErrNotExist) {
		tb.Skip(err)
	} else if err != nil {
		tb.Fatal(err)
	}
	return path
}

// File is one file read from an archive.
type File struct {
	Name string // base name, e.g. p001.json
	Data []byte
}

// ReadSynthea returns every pNNN.json bundle of a Synthea archive, in
// archive order, read straight from the .tar.gz. The error wraps
// fs.ErrNotExist when the archive is absent.
func ReadSynthea(name string) ([]File, error) {
	path, err := SyntheaPath(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []File
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if h.Typeflag != tar.TypeReg || !strings.HasSuffix(h.Name, ".json") {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, File{Name: filepath.Base(h.Name), Data: data})
	}
}

// SyntheaBundles calls fn with each bundle of a Synthea archive, in archive
// order. It skips the test with a message when the archive is absent.
func SyntheaBundles(tb testing.TB, name string, fn func(name string, data []byte)) {
	tb.Helper()
	SyntheaArchive(tb, name)
	files, err := ReadSynthea(name)
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range files {
		fn(f.Name, f.Data)
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

// GoInstalled returns the path of the program name that `go install` put
// on PATH, in GOBIN or in GOPATH/bin, or "" if it is in none of them.
func GoInstalled(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	for _, p := range filepath.SplitList(build.Default.GOPATH) {
		dirs = append(dirs, filepath.Join(p, "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
}
