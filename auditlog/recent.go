package auditlog

import (
	"sync"

	"github.com/phivault/phivault"
)

// RecentEntries is how many of the latest entries a Log keeps in memory
// for Recent: at 10,000 entries a second, over a second and a half.
const RecentEntries = 16384

// recentEntries is a ring of the latest entries appended, by index.
type recentEntries struct {
	mu    sync.Mutex
	ring  []*phivault.AuditEntry // slot i%len holds index i, for i in [first, next)
	first int64
	next  int64
}

// add records entries as the ones at indexes start onward. A gap (entries
// the Log did not append itself, such as a replayed journal) restarts the
// ring.
func (r *recentEntries) add(start int64, entries []*phivault.AuditEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ring == nil {
		r.ring = make([]*phivault.AuditEntry, RecentEntries)
	}
	if start != r.next || r.next == r.first {
		r.first, r.next = start, start
	}
	for _, e := range entries {
		r.ring[r.next%int64(len(r.ring))] = e
		r.next++
	}
	if r.next-r.first > int64(len(r.ring)) {
		r.first = r.next - int64(len(r.ring))
	}
}

// get returns the entries [start, end) if the ring holds them all.
func (r *recentEntries) get(start, end int64) ([]*phivault.AuditEntry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if start < r.first || end > r.next || start > end {
		return nil, false
	}
	out := make([]*phivault.AuditEntry, 0, end-start)
	for i := start; i < end; i++ {
		out = append(out, r.ring[i%int64(len(r.ring))])
	}
	return out, true
}
