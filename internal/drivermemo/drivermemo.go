// Package drivermemo remembers which token group drives a search, so that
// the stores sample the groups once per filter rather than once per query.
//
// A search's page and its total (a Find followed by a Count of the same
// filter) pass the very same groups slice, so a Memo recognizes it by
// identity, not by contents. The choice only steers the plan, never the
// result, so a stale one is harmless.
package drivermemo

import "github.com/phivault/phivault"

// Memo remembers the last driver picked for a filter's token groups. The
// zero value is ready to use. It is not safe for concurrent use; each store
// transaction keeps its own.
type Memo struct {
	groups [][]phivault.Token
	drive  int
}

// Driver returns the index of the token group to drive a search from, or -1
// when there are no groups. A single group drives without calling pick. For
// two or more, it returns the remembered choice if groups is the very slice
// it was picked for, and otherwise calls pick, remembering its answer only
// when pick succeeds.
func (m *Memo) Driver(groups [][]phivault.Token, pick func() (int, error)) (int, error) {
	switch len(groups) {
	case 0:
		return -1, nil
	case 1:
		return 0, nil
	}
	if m.of(groups) {
		return m.drive, nil
	}
	drive, err := pick()
	if err == nil {
		*m = Memo{groups: groups, drive: drive}
	}
	return drive, err
}

// of reports whether m was picked for groups: the same slice, not just
// equal contents.
func (m *Memo) of(groups [][]phivault.Token) bool {
	return len(m.groups) == len(groups) && len(groups) > 0 && &m.groups[0] == &groups[0]
}
