package vault

import (
	"cmp"
	"context"
	"errors"
	"net/http"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// Every write, whether a single create, update or delete, one entry of a
// batch, or a whole transaction, goes through the same three steps inside
// its store transaction:
//
//  1. stage: work out the version to store, exactly as it will be stored
//     (references resolved, id assigned, compartment final), and the
//     current version it replaces;
//  2. authorize: hand every staged write of the transaction to the
//     request's phivault.WriteGuard, which may refuse them;
//  3. commit: seal and store each staged version.
//
// Conditional matching (If-None-Exist, ifNoneExist, conditional
// references) runs on what the same guard says the caller may see.

var errNoGuard = errors.New("vault: write without a WriteGuard")

// guard returns the request's WriteGuard, or nil when there is none and
// none is required.
func (s *Service) guard(ctx context.Context) (phivault.WriteGuard, error) {
	g := phivault.WriteGuardFromContext(ctx)
	if g == nil && s.RequireGuard {
		return nil, errNoGuard
	}
	return g, nil
}

// stage works out what e will store and sets e.write; an entry that stores
// nothing (a DELETE of nothing, a POST whose ifNoneExist matched) keeps
// e.write nil and gets its status.
func (s *Service) stage(ctx context.Context, tx phivault.StoreTx, g phivault.WriteGuard, e *entry) error {
	e.write = nil
	if e.resource != nil && !e.valid {
		if issues := fhir.Validate(e.typ, e.resource); len(issues) > 0 {
			return &phivault.Error{Code: phivault.EUNPROCESSABLE, Message: "The resource is not valid FHIR R4.", Issues: issues}
		}
	}
	switch e.method {
	case http.MethodPost:
		if e.status != 0 {
			return nil // ifNoneExist matched
		}
		if e.prepared == nil {
			res, values, err := prepare(e.typ, e.id, 1, s.now(), e.resource)
			if err != nil {
				return err
			}
			if e.tokens, err = s.sealer.Tokens(ctx, tx, values); err != nil {
				return err
			}
			e.prepared = res
		}
		e.write = &phivault.Write{New: e.prepared, Object: e.resource, Assigned: true}
		e.status, e.created = http.StatusCreated, true
	case http.MethodPut:
		old, prev, deleted, err := s.currentForWrite(ctx, tx, g, e.typ, e.id)
		if err != nil {
			return err
		}
		if e.ifMatch != 0 && old == nil && !deleted {
			return phivault.ErrNotFound // nothing to match, as for a hidden one
		}
		if e.ifMatch != 0 && e.ifMatch != prev {
			return phivault.Errorf(phivault.EPRECONDITION, "If-Match names version %d but the current version is %d.", e.ifMatch, prev)
		}
		res, values, err := prepare(e.typ, e.id, prev+1, s.now(), e.resource)
		if err != nil {
			return err
		}
		if old != nil && old.Compartment != "" && old.Compartment != res.Compartment {
			// A write into a shredded compartment fails when it seals;
			// one that would move the resource out of it is checked here.
			if err := checkShredded(ctx, tx, old.Compartment); err != nil {
				return err
			}
		}
		if e.tokens, err = s.sealer.Tokens(ctx, tx, values); err != nil {
			return err
		}
		e.prepared = res
		e.write = &phivault.Write{Old: old, New: res, Object: e.resource}
		if e.typ == "Patient" && old == nil {
			n, err := tx.Count(ctx, phivault.ResourceFilter{Compartments: []string{e.id}})
			if err != nil {
				return err
			}
			e.write.Occupied = n > 0
		}
		e.status, e.created = http.StatusOK, old == nil || deleted
		if e.created {
			e.status = http.StatusCreated
		}
	case http.MethodDelete:
		e.status = http.StatusNoContent
		// Deleting nothing succeeds in a Bundle and is not found alone;
		// what the caller may not see is nothing to it.
		var nothing error = phivault.ErrNotFound
		if e.index >= 0 {
			nothing = nil
		}
		cur, err := tx.Current(ctx, e.typ, e.id)
		if isNotFound(err) {
			return nothing
		} else if err != nil {
			return err
		}
		if h, err := hide(ctx, g, stub(cur)); err != nil {
			return err
		} else if h != nil {
			return hiddenOr(nothing, h, e)
		}
		if err := checkShredded(ctx, tx, cur.Compartment); err != nil {
			return err
		}
		if cur.Deleted {
			return nil // deleting twice is a no-op
		}
		old, err := s.openSealed(ctx, tx, cur)
		if err != nil {
			return err
		}
		if h, err := hide(ctx, g, old); err != nil {
			return err
		} else if h != nil {
			return hiddenOr(nothing, h, e)
		}
		tomb := &phivault.Resource{Type: e.typ, ID: e.id, Version: cur.Version + 1, LastUpdated: s.now(), Compartment: cur.Compartment, Deleted: true}
		e.prepared, e.tokens = tomb, nil
		e.write = &phivault.Write{Old: old, New: tomb}
	}
	return nil
}

// currentForWrite returns what a PUT of typ/id replaces: the current
// version decrypted, or for a deleted resource its last version before the
// deletion (a re-creation is decided as an update of it, in its
// compartment, with its labels); nil if there is none. It also returns
// the current version number (0 if none) and whether the resource is
// deleted. A resource the caller may not see answers ENOTFOUND before
// anything else is said of it (its version, its deletion, a shred).
func (s *Service) currentForWrite(ctx context.Context, tx phivault.StoreTx, g phivault.WriteGuard, typ, id string) (*phivault.Resource, int64, bool, error) {
	cur, err := tx.Current(ctx, typ, id)
	switch {
	case isNotFound(err):
		return nil, 0, false, nil
	case err != nil:
		return nil, 0, false, err
	}
	if h, err := hide(ctx, g, stub(cur)); err != nil || h != nil {
		return nil, 0, false, cmp.Or(err, h)
	}
	if err := checkShredded(ctx, tx, cur.Compartment); err != nil {
		return nil, 0, false, err
	}
	live := cur
	if cur.Deleted {
		if live, err = tx.Version(ctx, typ, id, cur.Version-1); isNotFound(err) {
			return nil, cur.Version, true, nil
		} else if err != nil {
			return nil, 0, false, err
		}
	}
	old, err := s.openSealed(ctx, tx, live)
	if err != nil {
		return nil, 0, false, err
	}
	if h, err := hide(ctx, g, old); err != nil || h != nil {
		return nil, 0, false, cmp.Or(err, h)
	}
	return old, cur.Version, cur.Deleted, nil
}

// hiddenOr is the answer to a DELETE of something the caller may not see:
// in a Bundle, like deleting nothing (nothing, a success); alone, the
// guard's hiding error.
func hiddenOr(nothing, hidden error, e *entry) error {
	if e.index >= 0 {
		return nothing
	}
	return hidden
}

// stub describes a stored version without decrypting it, for deciding
// whether the caller may know of it.
func stub(sr *phivault.SealedResource) *phivault.Resource {
	return &phivault.Resource{Type: sr.Type, ID: sr.ID, Version: sr.Version, LastUpdated: sr.LastUpdated,
		Compartment: sr.Compartment, Deleted: sr.Deleted}
}

// hide returns the error to answer for r if g hides it from the caller
// (nil without a guard), and err if g failed to decide.
func hide(ctx context.Context, g phivault.WriteGuard, r *phivault.Resource) (hidden, err error) {
	if g == nil {
		return nil, nil
	}
	e := g.Hide(ctx, r)
	if code := phivault.ErrorCode(e); code == phivault.ENOTFOUND || code == phivault.EFORBIDDEN {
		return e, nil
	}
	return nil, e
}

// authorize hands the staged writes of entries to the request's guard. A
// refusal is reported as the refused entry's error.
func (s *Service) authorize(ctx context.Context, g phivault.WriteGuard, entries []*entry) error {
	if g == nil {
		return nil
	}
	var writes []phivault.Write
	var of []*entry
	for _, e := range entries {
		if e.write != nil {
			writes = append(writes, *e.write)
			of = append(of, e)
		}
	}
	if len(writes) == 0 {
		return nil
	}
	err := g.AuthorizeWrites(ctx, writes)
	var refused *phivault.WriteRefused
	if errors.As(err, &refused) && refused.Index >= 0 && refused.Index < len(of) {
		return entryError(of[refused.Index], refused.Err)
	}
	return err
}

// commit seals and stores the staged version of e, if any.
func (s *Service) commit(ctx context.Context, tx phivault.StoreTx, e *entry) error {
	if e.write == nil {
		return nil
	}
	sealed := e.sealed
	if sealed == nil {
		var err error
		if sealed, err = s.sealer.Seal(ctx, tx, e.prepared); err != nil {
			return err
		}
	}
	if err := tx.Put(ctx, sealed, e.tokens); err != nil {
		return err
	}
	if !e.prepared.Deleted {
		e.res = e.prepared
	}
	return nil
}

// writeOne runs the single write e (a create, update, delete or batch
// entry) in tx: conditional create, stage, authorize, commit.
func (s *Service) writeOne(ctx context.Context, tx phivault.StoreTx, g phivault.WriteGuard, e *entry) error {
	e.reset()
	if e.method == http.MethodPost {
		e.id = e.newID
		if e.ifNone != "" {
			if err := s.matchIfNoneExist(ctx, tx, g, e); err != nil || e.status != 0 {
				return err
			}
		}
	}
	if e.resource != nil {
		if err := s.rewriteRefs(ctx, tx, g, e, nil); err != nil {
			return err
		}
	}
	if err := s.stage(ctx, tx, g, e); err != nil {
		return err
	}
	if err := s.authorize(ctx, g, []*entry{e}); err != nil {
		return err
	}
	return s.commit(ctx, tx, e)
}

// matchIfNoneExist looks for the visible resource e's ifNoneExist names;
// when there is one, e stores nothing and answers it.
func (s *Service) matchIfNoneExist(ctx context.Context, tx phivault.StoreTx, g phivault.WriteGuard, e *entry) error {
	q, err := conditionalQuery(e.typ, e.ifNone)
	if err != nil {
		return err
	}
	existing, err := s.matchOne(ctx, tx, g, q)
	if err != nil {
		return err
	}
	if existing != nil {
		e.res, e.status, e.id = existing, http.StatusOK, existing.ID
	}
	return nil
}

// reset clears what a previous run of the store function left on e; the
// store may run a transaction more than once.
func (e *entry) reset() {
	e.res, e.err, e.status, e.created, e.write = nil, nil, 0, false, nil
	if e.original != nil {
		e.resource = cloneObject(e.original)
	}
	if !e.preparedEarly {
		e.prepared, e.tokens, e.sealed = nil, nil, nil
	}
}
