package access

import (
	"context"
	"slices"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/policy"
)

// guard is the phivault.WriteGuard of one call: the vault hands it every
// write in the form it will store, inside the write's transaction, and
// asks it which conditional matches the caller may see. It is the only
// place writes are decided.
type guard struct {
	s *RecordService
	c *caller
	// touched lists the compartments whose access context the call's
	// writes may have changed; they are invalidated once the call ends.
	touched []string
}

var _ phivault.WriteGuard = (*guard)(nil)

// guarded returns ctx carrying a new guard for c's writes.
func (s *RecordService) guarded(ctx context.Context, c *caller) (context.Context, *guard) {
	g := &guard{s: s, c: c}
	return phivault.WithWriteGuard(ctx, g), g
}

// done invalidates the contexts the call's writes touched. It runs
// whether the call succeeded or not: a batch may have written some
// entries, and a dropped cache entry only costs a reload.
func (g *guard) done() {
	if len(g.touched) > 0 {
		g.s.cache.invalidate(g.touched...)
		g.s.teams.invalidate()
	}
}

// Hide returns nil if the caller may read r, else the error a read of it
// answers (not found, or how to break the glass).
func (g *guard) Hide(ctx context.Context, r *phivault.Resource) error {
	t, err := targetOf(g.c, r)
	if err != nil {
		return err
	}
	d, err := g.s.decide(ctx, g.c, policy.Read, t)
	if err != nil {
		return err
	}
	if !d.Allow {
		return hidden(d)
	}
	// What the call may see of a patient (a Bundle's read, a conditional
	// match) is recorded on its audit entry, as are break-the-glass uses.
	g.c.note.AddCompartment(t.compartment)
	if usedGrant(d) {
		g.c.note.MarkBreakGlass()
	}
	return nil
}

// Bound returns the compartments the caller's conditional matching is
// bounded to; see bound.
func (g *guard) Bound(ctx context.Context, typ string) ([]string, error) {
	return g.s.bound(ctx, g.c, typ)
}

// AuthorizeWrites decides each write on its stored form: an update or
// delete on the version it replaces (in that version's compartment), a
// create or update on the new version in its final compartment. A Patient
// written in the same set decides its compartment's department and labels
// for every write of the set, so that what is decided is what is stored.
func (g *guard) AuthorizeWrites(ctx context.Context, writes []phivault.Write) error {
	patients, err := g.patients(ctx, writes)
	if err != nil {
		return err
	}
	var tl tally
	var last policy.Decision
	for i := range writes {
		w := &writes[i]
		d, err := g.authorize(ctx, w, patients)
		if err != nil {
			return &phivault.WriteRefused{Index: i, Err: err}
		}
		tl.add(d)
		last = d
		g.touch(w)
	}
	if len(writes) == 1 {
		record(g.c, last)
	} else {
		tl.note(g.c)
	}
	return nil
}

// authorize decides one write and returns the deciding permit, or the
// error to give the caller.
func (g *guard) authorize(ctx context.Context, w *phivault.Write, patients map[string]*policy.Patient) (policy.Decision, error) {
	s, c := g.s, g.c
	action := policy.Create
	if w.Old != nil {
		action = policy.Update
		if w.New.Deleted {
			action = policy.Delete
		}
		if err := s.authorizeExisting(ctx, c, action, w.Old); err != nil {
			return policy.Decision{}, err
		}
	}
	if w.New.Deleted {
		return policy.Decision{Allow: true}, nil
	}
	t := &target{typ: w.New.Type, id: w.New.ID, compartment: w.New.Compartment, labels: Labels(w.Object),
		obj: w.Object, btgRecord: isBreakGlassBody(w.New.Type, w.Object), patient: patients[w.New.Compartment]}
	d, err := s.decide(ctx, c, action, t)
	if err != nil {
		return d, err
	}
	if d.Allow && w.Occupied {
		// A Patient created into a compartment that already holds records
		// must also be allowed as the compartment stands: its department
		// and labels are not the caller's to choose for those records.
		info, err := s.patientInfo(ctx, w.New.ID)
		if err != nil {
			return d, err
		}
		now := info.policyPatient(w.New.ID, c.p)
		t.patient = &now
		if d, err = s.decide(ctx, c, action, t); err != nil {
			return d, err
		}
	}
	if !d.Allow {
		record(c, d)
		return d, phivault.Errorf(phivault.EFORBIDDEN, "You may not %s this %s.", action, t.typ)
	}
	return d, nil
}

// patients returns the policy's view of each patient whose Patient
// resource the writes store: the department and labels of the version
// being stored, and, unless the server just drew the Patient's id (so its
// compartment holds nothing yet), the care team and consents stored in
// its compartment.
func (g *guard) patients(ctx context.Context, writes []phivault.Write) (map[string]*policy.Patient, error) {
	var out map[string]*policy.Patient
	for i := range writes {
		w := &writes[i]
		if w.New.Type != "Patient" || w.New.Deleted {
			continue
		}
		p := &policy.Patient{ID: w.New.ID}
		if !w.Assigned {
			info, err := g.s.patientInfo(ctx, w.New.ID)
			if err != nil {
				return nil, err
			}
			*p = info.policyPatient(w.New.ID, g.c.p)
		}
		p.Department = refID(w.Object["managingOrganization"], "Organization")
		p.Labels = Labels(w.Object)
		if out == nil {
			out = map[string]*policy.Patient{}
		}
		out[w.New.ID] = p
	}
	return out, nil
}

// touch notes the compartments w writes in, on the call's audit entry
// (a Bundle's entry names every patient it wrote for), and those whose
// access context w may change.
func (g *guard) touch(w *phivault.Write) {
	if w.Old != nil {
		g.c.note.AddCompartment(w.Old.Compartment)
	}
	g.c.note.AddCompartment(w.New.Compartment)
	if !isContextType(w.New.Type) {
		return
	}
	if w.Old != nil && w.Old.Compartment != "" {
		g.touched = append(g.touched, w.Old.Compartment)
	}
	if w.New.Compartment != "" {
		g.touched = append(g.touched, w.New.Compartment)
	}
}

// isContextType reports whether a write of typ may change a patient's
// access context.
func isContextType(typ string) bool {
	return slices.Contains(contextTypes, typ)
}

// own is the WriteGuard of the access layer's own records (break-the-glass
// records), which no principal may write and the policies never decide.
type own struct{}

func (own) AuthorizeWrites(context.Context, []phivault.Write) error { return nil }
func (own) Hide(context.Context, *phivault.Resource) error          { return nil }
func (own) Bound(context.Context, string) ([]string, error)         { return nil, nil }

// ownWrite returns ctx for a write of the access layer's own records.
func ownWrite(ctx context.Context) context.Context { return phivault.WithWriteGuard(ctx, own{}) }
