package e2e_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
)

// needle is one string the PHI scanner looks for. Its label ("family name
// #12") is what reports print: never the value itself.
//
// Matching raw bytes for short strings is a trade-off: the database is
// mostly ciphertext, and a three-letter name turns up by chance in 100 MB
// of random bytes dozens of times (case-insensitively). So names are found
//
//   - anywhere, ignoring ASCII case, when 7 bytes or longer;
//   - anywhere, exactly, when 6 bytes long;
//   - at any length as a JSON string value: `"Toy"` ignoring case, preceded
//     by one of : [ , or whitespace, the way a leaked resource, log field or
//     temp file would hold it.
//
// Identifiers (6 bytes or more), address lines and birth dates are found
// anywhere, exactly. The chance of any false hit over a few hundred MB is
// below 1 in 1000.
type needle struct {
	label     string
	pattern   []byte // ASCII-lowercased bytes to find
	exact     []byte // when set, the match must also equal these bytes
	jsonValue bool   // pattern is a quoted string; the byte before must open a JSON value
}

// nameNeedles returns the needles for a person's name.
func nameNeedles(label, name string) []needle {
	var out []needle
	switch {
	case len(name) >= 7:
		out = append(out, needle{label: label, pattern: lower(name)})
	case len(name) == 6:
		out = append(out, needle{label: label, pattern: lower(name), exact: []byte(name)})
	}
	return append(out, needle{label: label, pattern: lower(`"` + name + `"`), jsonValue: true})
}

// exactNeedle returns the needle for a value matched byte for byte.
func exactNeedle(label, value string) needle {
	return needle{label: label, pattern: lower(value), exact: []byte(value)}
}

func lower(s string) []byte {
	b := []byte(s)
	foldASCII(b, b)
	return b
}

// foldASCII writes src with A-Z lowercased to dst; only ASCII is folded, so
// lengths and offsets stay the same.
func foldASCII(dst, src []byte) {
	for i, c := range src {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst[i] = c
	}
}

func opensJSONValue(c byte) bool {
	switch c {
	case ':', '[', ',', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}

// scanner finds needles in byte streams of any size, a chunk at a time.
// It indexes needles by their first three bytes in a 2 MiB bitmap, so a
// scan costs one bit test per input byte.
type scanner struct {
	needles []needle
	byKey   map[uint32][]int
	bits    []uint64
	maxLen  int
	chunk   int
}

func newScanner(needles []needle, chunk int) (*scanner, error) {
	s := &scanner{needles: needles, byKey: map[uint32][]int{}, bits: make([]uint64, 1<<24/64), chunk: chunk}
	for i, n := range needles {
		if len(n.pattern) < 3 {
			return nil, fmt.Errorf("%s: needles must be at least 3 bytes", n.label)
		}
		k := key3(n.pattern)
		s.byKey[k] = append(s.byKey[k], i)
		s.bits[k/64] |= 1 << (k % 64)
		s.maxLen = max(s.maxLen, len(n.pattern))
	}
	if chunk <= s.maxLen {
		return nil, errors.New("scanner chunk shorter than a needle")
	}
	return s, nil
}

func key3(b []byte) uint32 { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }

// scan reads r to the end and returns the indexes of the needles it holds.
func (s *scanner) scan(r io.Reader) ([]int, error) {
	found := map[int]bool{}
	carry := s.maxLen + 1 // a match cut by the chunk end, and the byte before it
	window := make([]byte, 0, carry+s.chunk)
	folded := make([]byte, carry+s.chunk)
	for {
		n, err := io.ReadFull(r, window[len(window):len(window)+s.chunk])
		window = window[:len(window)+n]
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, err
		}
		f := folded[:len(window)]
		foldASCII(f, window)
		for i := 0; i+3 <= len(f); i++ {
			k := key3(f[i:])
			if s.bits[k/64]&(1<<(k%64)) == 0 {
				continue
			}
			for _, ni := range s.byKey[k] {
				nd := &s.needles[ni]
				end := i + len(nd.pattern)
				if end > len(f) || !bytes.Equal(f[i:end], nd.pattern) {
					continue
				}
				if nd.exact != nil && !bytes.Equal(window[i:end], nd.exact) {
					continue
				}
				// At i == 0 there is no byte before: the input starts
				// there, or the match was checked in the previous window.
				if nd.jsonValue && (i == 0 || !opensJSONValue(window[i-1])) {
					continue
				}
				found[ni] = true
			}
		}
		if err != nil { // EOF: the last window is done
			break
		}
		if len(window) > carry {
			copy(window, window[len(window)-carry:])
			window = window[:carry]
		}
	}
	out := make([]int, 0, len(found))
	for i := range found {
		out = append(out, i)
	}
	sort.Ints(out)
	return out, nil
}

// labels returns the distinct labels of the needles found, in order.
func (s *scanner) labels(found []int) []string {
	var out []string
	for _, i := range found {
		if l := s.needles[i].label; !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

// hit is a needle found somewhere.
type hit struct {
	label string
	where string
}

func (h hit) String() string { return h.label + " found in " + h.where }

// scanFiles scans every regular file under root; where names each file by
// its path relative to filepath.Dir(root), plus suffix.
func (s *scanner) scanFiles(root, suffix string) (hits []hit, bytesRead int64, err error) {
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // a temp file went away
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		} else if err != nil {
			return err
		}
		defer f.Close()
		cr := &countingReader{r: f}
		found, err := s.scan(cr)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		bytesRead += cr.n
		rel, _ := filepath.Rel(filepath.Dir(root), path)
		for _, l := range s.labels(found) {
			hits = append(hits, hit{label: l, where: rel + suffix})
		}
		return nil
	})
	return hits, bytesRead, err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
