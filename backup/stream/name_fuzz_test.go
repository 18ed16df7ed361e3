package stream

import (
	"strings"
	"testing"
)

// FuzzParseName checks that parsing a stream object's name never panics
// and accepts only names it writes itself (the canonical form).
func FuzzParseName(f *testing.F) {
	f.Add("0000000000000001-0000000000000001-1796568227524-579")
	f.Add("0000000000000001-00000000000000ff-0-100")
	f.Add("000000000000000g-0000000000000001-1-100")
	f.Add("0000000000000002-0000000000000001-1-100")
	f.Fuzz(func(t *testing.T, base string) {
		k, fn, ok := parseName(3, base)
		if !ok {
			return
		}
		c := &Client{prefix: "stream/x/"}
		name := c.objectName(k, fn.created, fn.size)
		if got := strings.TrimPrefix(name, "stream/x/3/"); got != base {
			t.Errorf("parseName(%q) accepted a name it writes as %q", base, got)
		}
	})
}
