package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// DefaultPruneGrace is how young an unreferenced chunk Prune leaves, on a
// target that tells when its objects were written (a DatedTarget): it may
// be a chunk of a backup still running, whose manifest is not written yet.
const DefaultPruneGrace = 24 * time.Hour

// A DatedTarget is a Target that tells when an object was written.
type DatedTarget interface {
	Target
	// Written returns the time the object name was written, or
	// ErrNotFound.
	Written(ctx context.Context, name string) (time.Time, error)
}

var _ DatedTarget = (*Dir)(nil)

// Written returns the time the object name was written: its file's
// modification time (Put writes it once and never again).
func (d *Dir) Written(ctx context.Context, name string) (time.Time, error) {
	path, err := d.file(name)
	if err != nil {
		return time.Time{}, err
	}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return time.Time{}, fmt.Errorf("backup: object %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("backup: stat %s: %w", name, err)
	}
	return fi.ModTime(), nil
}

// PruneOptions configures Prune.
type PruneOptions struct {
	Policy Policy
	// Verifier, if not nil, pins the manifests' signer (as
	// RestoreOptions.Verifier).
	Verifier note.Verifier
	// Grace is how young an unreferenced chunk is left, if t is a
	// DatedTarget. Zero means DefaultPruneGrace.
	Grace time.Duration
	// DryRun plans and counts, and deletes nothing.
	DryRun bool
	// Now returns the time; nil means time.Now.
	Now func() time.Time
}

// A PruneResult tells what Prune did (or, in a dry run, would do).
type PruneResult struct {
	Plan    []Decision // newest first
	Removed []string   // snapshots whose manifests were deleted
	// Retained lists the objects Prune left because the target refused
	// to delete them yet (ErrRetained): a snapshot whose manifest is
	// retained stays, with its chunks, until a later prune.
	Retained      []string
	MarksRemoved  int // marks of removed snapshots
	ChunksKept    int // chunks a remaining snapshot references
	ChunksRemoved int // unreferenced chunks deleted
	ChunksYoung   int // unreferenced chunks left as younger than Grace
}

// ErrConcurrentBackup is returned by Prune when a snapshot written while
// it ran names a chunk it deleted.
var ErrConcurrentBackup = errors.New("a backup ran during the prune")

// Prune applies opt.Policy to t's snapshots (Plan) and removes what it
// drops, in an order that leaves every remaining snapshot restorable at
// each step, crash or not:
//
//  1. the manifests of the removed snapshots (a snapshot is gone once its
//     manifest is), then their verification marks;
//  2. a mark and sweep: every manifest in t is read again, and every
//     chunk none of them names is deleted. A chunk any snapshot listed at
//     the sweep names is never deleted, whatever the plan said.
//
// An object the target refuses to delete yet (ErrRetained) is left and
// listed in the result's Retained, not an error. Every manifest and mark
// in t must read and verify, or Prune deletes nothing: it cannot know
// which chunks an unreadable manifest needs.
//
// Prune and Backup MUST NOT run against one target at the same time: a
// backup that started before the sweep may reuse a chunk that only removed
// snapshots named, and write its manifest after the chunk is gone. On a
// DatedTarget, chunks younger than opt.Grace are left (a running backup's
// new chunks); and a snapshot whose manifest appears during the prune is
// checked against the chunks deleted, and reported as ErrConcurrentBackup
// if it names one. Neither makes running the two together safe.
func Prune(ctx context.Context, t Target, keys *KeySet, opt PruneOptions) (*PruneResult, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Grace <= 0 {
		opt.Grace = DefaultPruneGrace
	}
	now := opt.Now()
	ms, err := List(ctx, t, keys, opt.Verifier)
	if err != nil {
		return nil, err
	}
	marks, err := Marks(ctx, t, keys)
	if err != nil {
		return nil, err
	}
	manifests := map[string]*Manifest{}
	infos := make([]SnapshotInfo, len(ms))
	for i, m := range ms {
		manifests[m.Snapshot] = m
		infos[i] = SnapshotInfo{ID: m.Snapshot, Time: m.Time, Verified: marks[m.Snapshot] != nil}
	}
	plan, err := Plan(infos, opt.Policy, now)
	if err != nil {
		return nil, err
	}
	res := &PruneResult{Plan: plan}
	if opt.DryRun {
		var keep []*Manifest
		for _, d := range plan {
			if d.Keep {
				keep = append(keep, manifests[d.ID])
			}
		}
		return res, sweep(ctx, t, keep, opt, now, res, nil)
	}

	// 1. Manifests, then marks. A crash in between leaves a mark of a
	// snapshot that is gone, which the next prune removes.
	removed := map[string]bool{}
	for _, d := range plan {
		if d.Keep {
			continue
		}
		switch err := t.Delete(ctx, "snapshots/"+d.ID); {
		case errors.Is(err, ErrRetained):
			res.Retained = append(res.Retained, "snapshots/"+d.ID)
		case err == nil || errors.Is(err, ErrNotFound):
			removed[d.ID] = true
			res.Removed = append(res.Removed, d.ID)
		default:
			return res, err
		}
	}
	for id := range marks {
		if manifests[id] != nil && !removed[id] {
			continue // its snapshot stays
		}
		switch err := t.Delete(ctx, markPrefix+id); {
		case errors.Is(err, ErrRetained):
			res.Retained = append(res.Retained, markPrefix+id)
		case err == nil || errors.Is(err, ErrNotFound):
			res.MarksRemoved++
		default:
			return res, err
		}
	}

	// 2. Mark and sweep over the manifests in t now: the kept ones, the
	// retained ones, and any a backup wrote meanwhile.
	names, err := t.List(ctx, "snapshots/")
	if err != nil {
		return res, err
	}
	var live []*Manifest
	listed := map[string]bool{}
	for _, n := range names {
		listed[n] = true
		id := n[len("snapshots/"):]
		m := manifests[id]
		if m == nil {
			if m, err = ReadManifest(ctx, t, keys, id, opt.Verifier); err != nil {
				return res, err
			}
			manifests[id] = m
		}
		live = append(live, m)
	}
	deleted := map[string]bool{}
	if err := sweep(ctx, t, live, opt, now, res, deleted); err != nil {
		return res, err
	}

	// A backup that finished while the prune ran: does it name a chunk
	// the sweep deleted?
	after, err := t.List(ctx, "snapshots/")
	if err != nil {
		return res, err
	}
	for _, n := range after {
		id := n[len("snapshots/"):]
		if listed[n] {
			continue
		}
		m, err := ReadManifest(ctx, t, keys, id, opt.Verifier)
		if err != nil {
			return res, err
		}
		for _, f := range m.Files {
			for _, c := range f.Chunks {
				if deleted[c.ID] {
					return res, fmt.Errorf("backup: prune: snapshot %s, written during the prune, names chunk %s that the prune deleted: %w; it does not restore, run a new backup", id, c.ID, ErrConcurrentBackup)
				}
			}
		}
	}
	slices.Sort(res.Retained)
	return res, nil
}

// sweep deletes the chunks of t none of the manifests live names, except
// those younger than opt.Grace on a DatedTarget, and adds their ids to
// deleted; a nil deleted is a dry run, which only counts them.
func sweep(ctx context.Context, t Target, live []*Manifest, opt PruneOptions, now time.Time, res *PruneResult, deleted map[string]bool) error {
	used := map[string]bool{}
	for _, m := range live {
		for _, f := range m.Files {
			for _, c := range f.Chunks {
				used[c.ID] = true
			}
		}
	}
	names, err := t.List(ctx, "chunks/")
	if err != nil {
		return err
	}
	dt, dated := t.(DatedTarget)
	for _, n := range names {
		id := n[len("chunks/"):]
		if used[id] {
			res.ChunksKept++
			continue
		}
		if dated {
			w, err := dt.Written(ctx, n)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if now.Sub(w) < opt.Grace {
				res.ChunksYoung++
				continue
			}
		}
		if deleted == nil {
			res.ChunksRemoved++
			continue
		}
		switch err := t.Delete(ctx, n); {
		case errors.Is(err, ErrRetained):
			res.Retained = append(res.Retained, n)
		case err == nil:
			res.ChunksRemoved++
			deleted[id] = true
		case errors.Is(err, ErrNotFound):
		default:
			return err
		}
	}
	return nil
}
