package policy

import (
	"encoding/binary"
	"slices"
	"sync"
	"time"
)

// memo remembers decisions by their inputs. It is safe for concurrent use;
// when full it starts over.
type memo struct {
	max int
	mu  sync.RWMutex
	m   map[string]Decision
}

func (m *memo) get(key []byte) (Decision, bool) {
	m.mu.RLock()
	d, ok := m.m[string(key)]
	m.mu.RUnlock()
	if !ok {
		return Decision{}, false
	}
	d.Policies, d.Errors = slices.Clone(d.Policies), slices.Clone(d.Errors)
	return d, true
}

func (m *memo) put(key []byte, d Decision) {
	d.Policies, d.Errors = slices.Clone(d.Policies), slices.Clone(d.Errors)
	m.mu.Lock()
	if m.m == nil || len(m.m) >= m.max {
		m.m = make(map[string]Decision)
	}
	m.m[string(key)] = d
	m.mu.Unlock()
}

// memoKey encodes every input a decision depends on, length-prefixed so
// that distinct requests never share a key: everything the entities and
// context of build carry, with times in seconds as the policies see them,
// and the SMART scopes reduced to their verdict scope (scopeOK of r),
// which is all the policies see of them and of the resource body. The
// resource id is left out; sets whose policies name resource entities get
// no memo.
func memoKey(r *Request, scope bool) []byte {
	b := make([]byte, 0, 256)
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	strs := func(ss []string) {
		b = binary.AppendUvarint(b, uint64(len(ss)))
		for _, s := range ss {
			str(s)
		}
	}
	tm := func(t time.Time) { b = binary.AppendVarint(b, int64(unix(t))) }
	flag := func(v bool) {
		if v {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	p := &r.Principal
	str(p.ID)
	str(p.Kind)
	strs(p.Roles)
	str(p.Department)
	str(p.Organization)
	strs(p.Clearances)
	tm(p.TrainingValidUntil)
	tm(p.AuthTime)
	flag(p.Suspended)
	str(p.PatientID)
	str(string(r.Action))
	str(r.Resource.Type)
	str(r.Resource.Category)
	strs(r.Resource.Labels)
	pt := &r.Patient
	str(pt.ID)
	strs(pt.CareTeam)
	str(pt.Department)
	strs(pt.Labels)
	strs(pt.Consent.Actors)
	strs(pt.Consent.Organizations)
	strs(pt.Consent.Purposes)
	flag(pt.Restricted)
	c := &r.Context
	tm(c.Time)
	str(c.Purpose)
	if g := c.BreakGlass; g != nil {
		flag(true)
		str(g.PatientID)
		str(g.Reason)
		tm(g.Until)
	} else {
		flag(false)
	}
	str(c.BreakGlassWhy)
	str(c.SourceAddress)
	flag(c.SMART)
	flag(scope)
	return b
}
