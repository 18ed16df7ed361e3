package phivault

import (
	"context"
	"fmt"
)

// Write is one change a RecordService is about to store, exactly as it will
// be stored: the resource's references are resolved (urn:uuid:, conditional
// and fullUrl references of a Bundle, absolute references under the
// server's own base), its id is assigned and its compartment is final.
type Write struct {
	// Old is the current stored version, decrypted, or nil when there is
	// none (the resource never existed or was deleted).
	Old *Resource
	// New is the version to store. For a delete it is the tombstone
	// (Deleted, no Body), in Old's compartment.
	New *Resource
	// Object is New's body, decoded; nil for a delete. A WriteGuard must
	// not modify it.
	Object map[string]any
	// Assigned reports that the server drew New.ID for this write, so that
	// nothing else can be stored under that id (or, for a Patient, in its
	// compartment) yet.
	Assigned bool
	// Occupied reports, for a Patient created under an id the client
	// chose (Old nil, not Assigned), that its compartment already holds
	// stored resources: the Patient's department and labels would then
	// change who may see records written before it.
	Occupied bool
}

// WriteGuard authorizes writes on the form a RecordService will store,
// inside the write's own transaction. There is one code path: a single
// create, update or delete, each entry of a batch, and a whole transaction
// Bundle all reach AuthorizeWrites with their final form.
//
// A RecordService takes its WriteGuard from the request's context
// ([WithWriteGuard]); the access layer puts one there for every call.
type WriteGuard interface {
	// AuthorizeWrites decides writes, which are stored together or not
	// at all: a single interaction, one batch entry, or every write of a
	// transaction. It returns nil to allow all of them, or an error to
	// store none: a *WriteRefused naming the first refused write, or any
	// other error. It MUST NOT write anything itself; it may read.
	AuthorizeWrites(ctx context.Context, writes []Write) error
	// Hide returns nil if the caller may see r, else the error to answer
	// for it: ENOTFOUND, as for what does not exist, or EFORBIDDEN where
	// the caller may learn that it exists (a clinician who could break the
	// glass). Any other error is a failure to decide. Conditional matching
	// (If-None-Exist, ifNoneExist, conditional references) and the reads
	// of a Bundle consider visible resources only, and a write over (or a
	// deletion of) a resource the caller may not see answers Hide's error,
	// so that no answer depends on what the caller may not see. r may be a
	// stub without a Body (its type, id, version and compartment), to
	// decide before anything is decrypted or said of it.
	Hide(ctx context.Context, r *Resource) error
	// Bound returns the patient compartments that conditional matching on
	// resources of typ may look into, or nil when the caller's view is not
	// bounded by compartments. The store then searches those compartments
	// alone, so that matching decrypts nothing outside the caller's view.
	Bound(ctx context.Context, typ string) ([]string, error)
}

// WriteRefused is the error of a WriteGuard that refuses writes[Index].
// Err is the error to give the caller.
type WriteRefused struct {
	Index int
	Err   error
}

func (e *WriteRefused) Error() string { return fmt.Sprintf("write %d refused: %v", e.Index, e.Err) }

// Unwrap returns Err.
func (e *WriteRefused) Unwrap() error { return e.Err }

type writeGuardKey struct{}

// WithWriteGuard returns a copy of ctx whose writes g decides.
func WithWriteGuard(ctx context.Context, g WriteGuard) context.Context {
	return context.WithValue(ctx, writeGuardKey{}, g)
}

// WriteGuardFromContext returns the WriteGuard of ctx, or nil.
func WriteGuardFromContext(ctx context.Context) WriteGuard {
	g, _ := ctx.Value(writeGuardKey{}).(WriteGuard)
	return g
}
