package incident

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/incident/notice"
)

// Addressees reads, inside the vault, whom the notice letters of a breach
// go to. It serves only POST /security/incidents/{id}/notices, which
// records one audit entry naming every patient before it calls Addressee.
type Addressees interface {
	// Decoys returns the ids of the vault's decoy patients (honeytokens):
	// made-up people, never written to. It decrypts nothing.
	Decoys(ctx context.Context) ([]string, error)
	// Addressee returns the name and postal address of patient, read
	// from its record and decrypted. A record deleted or crypto-shredded
	// is an Addressee of status notice.StatusGone, not an error; one
	// without a usable name or address is notice.StatusNoAddress.
	// Implementations MUST NOT log or record the name or address.
	Addressee(ctx context.Context, patient string) (notice.Addressee, error)
}

// Exposure is what a breach exposed of each patient, from the trail
// alone: the same reads as [Assess] counts.
type Exposure struct {
	// Began and Ended are the times of the first and the last read in
	// scope; zero if none.
	Began, Ended time.Time
	// Kinds are the kinds of PHI that left of each patient's record, in
	// the order of notice.KindOrder. A resource returned by a read that
	// touched several compartments counts for each of them (a Patient
	// resource only for its own), erring towards notifying.
	Kinds map[string][]string
	// Resources counts the resource versions that left, each once;
	// ByKind counts them by kind of PHI.
	Resources int
	ByKind    map[string]int
}

// Patients returns the patients exposed, sorted.
func (x *Exposure) Patients() []string {
	var out []string
	for p := range x.Kinds {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Expose computes the exposure of each patient of scope s from the trail
// entries, read in order.
func Expose(entries iter.Seq2[int64, *phivault.AuditEntry], s Scope) *Exposure {
	x := &Exposure{Kinds: map[string][]string{}, ByKind: map[string]int{}}
	kinds := map[string]map[string]bool{}
	seen := map[string]bool{}
	nets := prefixes(s.Sources)
	for _, e := range entries {
		if e.Outcome != "ok" || !s.covers(e, nets) || !slices.Contains(readActions, e.Action) || len(e.Returned) == 0 {
			continue
		}
		if x.Began.IsZero() || e.Time.Before(x.Began) {
			x.Began = e.Time
		}
		if e.Time.After(x.Ended) {
			x.Ended = e.Time
		}
		for _, c := range e.Compartments {
			if kinds[c] == nil {
				kinds[c] = map[string]bool{}
			}
		}
		for _, r := range e.Returned {
			typ, rest, _ := strings.Cut(r, "/")
			id, _, _ := strings.Cut(rest, "/")
			if !seen[r] {
				seen[r] = true
				x.Resources++
				x.ByKind[PHIKind(typ)]++
			}
			for _, c := range e.Compartments {
				if typ == "Patient" && id != c {
					continue
				}
				kinds[c][PHIKind(typ)] = true
			}
		}
	}
	for p, ks := range kinds {
		var list []string
		for _, k := range notice.KindOrder {
			if ks[k] {
				list = append(list, k)
			}
		}
		x.Kinds[p] = list
	}
	return x
}

// trailEntries reads trail in chunks; the error, if any, is in *errp
// once the sequence ends.
func trailEntries(ctx context.Context, trail detect.Trail, errp *error) iter.Seq2[int64, *phivault.AuditEntry] {
	return func(yield func(int64, *phivault.AuditEntry) bool) {
		size, err := trail.Size(ctx)
		if err != nil {
			*errp = fmt.Errorf("incident: trail size: %w", err)
			return
		}
		for start := int64(0); start < size; start += trailChunk {
			es, err := trail.Entries(ctx, start, min(start+trailChunk, size))
			if err != nil {
				*errp = fmt.Errorf("incident: read the trail: %w", err)
				return
			}
			for i, e := range es {
				if e != nil && !yield(start+int64(i), e) {
					return
				}
			}
		}
	}
}

// Expose computes the exposure of incident id's patients from the trail,
// with the breach the letters describe.
func (s *Service) Expose(ctx context.Context, id string, trail detect.Trail) (*Exposure, notice.Breach, error) {
	in, err := s.Get(ctx, id)
	if err != nil {
		return nil, notice.Breach{}, err
	}
	var readErr error
	x := Expose(trailEntries(ctx, trail, &readErr), in.Scope)
	if readErr != nil {
		return nil, notice.Breach{}, readErr
	}
	b := notice.Breach{Incident: in.ID, Began: x.Began, Ended: x.Ended, Discovered: in.Discovered,
		Resources: x.Resources, ByKind: x.ByKind}
	for _, a := range in.Actions {
		if a.State == ActionDone {
			b.ActionsDone = append(b.ActionsDone, a.Kind)
		}
	}
	return x, b, nil
}
