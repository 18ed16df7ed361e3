package backup

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"
)

// A Policy says which snapshots to keep, like restic's forget --keep-*.
// A snapshot is kept if any rule keeps it. Counts below zero mean no
// limit; zero turns the rule off. Calendar buckets are in UTC, and in
// each the newest snapshot is the one kept.
type Policy struct {
	// KeepLast keeps the newest KeepLast snapshots.
	KeepLast int
	// KeepDaily keeps the newest snapshot of each of the KeepDaily newest
	// days that have snapshots; KeepWeekly of ISO weeks (Monday to
	// Sunday), KeepMonthly of calendar months.
	KeepDaily, KeepWeekly, KeepMonthly int
	// KeepWithin keeps every snapshot taken less than KeepWithin before
	// the newest snapshot (or before now, if the newest is in the future).
	// As in restic, it counts from the newest snapshot, not from now: if
	// backups stop, the rule does not run the last ones out.
	KeepWithin time.Duration
	// AllowUnverified lets a plan remove snapshots when none carries a
	// verification mark. It is not a retention rule but an override of a
	// safety check: without a mark, nothing says any snapshot restores.
	AllowUnverified bool
}

// SnapshotInfo is what Plan needs to know of a snapshot.
type SnapshotInfo struct {
	ID       string
	Time     time.Time
	Verified bool // it carries a verification mark
}

// A Decision is Plan's verdict on one snapshot, with the rules that keep
// it (none if it is removed).
type Decision struct {
	SnapshotInfo
	Keep    bool
	Reasons []string // "last 1", "daily 2026-12-05", "weekly 2026-W49", "monthly 2026-12", "within 168h0m0s", "newest verified"
}

// ErrNothingVerified is returned by Plan (and Prune) when a policy would
// remove snapshots and no snapshot carries a verification mark.
var ErrNothingVerified = errors.New("no snapshot carries a verification mark")

// Plan decides, for each snapshot, whether p keeps it and why, and returns
// the decisions newest first. It is a pure function of its arguments.
//
// Whatever p says, the newest snapshot that carries a verification mark is
// kept ("newest verified"). If no snapshot carries one and p would remove
// any, Plan returns ErrNothingVerified unless p.AllowUnverified.
func Plan(snaps []SnapshotInfo, p Policy, now time.Time) ([]Decision, error) {
	ds := make([]Decision, len(snaps))
	for i, s := range snaps {
		ds[i] = Decision{SnapshotInfo: s}
	}
	// Newest first; equal times in id order, so that a plan is the same
	// however the snapshots were listed.
	slices.SortFunc(ds, func(a, b Decision) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	keep := func(d *Decision, reason string) {
		d.Keep = true
		d.Reasons = append(d.Reasons, reason)
	}
	buckets := []struct {
		n   int
		key func(time.Time) string
	}{
		{p.KeepLast, nil},
		{p.KeepDaily, func(t time.Time) string { return "daily " + t.Format("2006-01-02") }},
		{p.KeepWeekly, func(t time.Time) string {
			y, w := t.ISOWeek()
			return fmt.Sprintf("weekly %04d-W%02d", y, w)
		}},
		{p.KeepMonthly, func(t time.Time) string { return "monthly " + t.Format("2006-01") }},
	}
	for _, b := range buckets {
		left, last := b.n, ""
		for i := range ds {
			if left == 0 {
				break
			}
			if b.key == nil {
				keep(&ds[i], fmt.Sprintf("last %d", i+1))
				left--
				continue
			}
			k := b.key(ds[i].Time.UTC())
			if k == last {
				continue // an older snapshot of a bucket already kept
			}
			last = k
			keep(&ds[i], k)
			left--
		}
	}
	if p.KeepWithin > 0 && len(ds) > 0 {
		from := ds[0].Time
		if from.After(now) {
			from = now
		}
		cutoff := from.Add(-p.KeepWithin)
		for i := range ds {
			if ds[i].Time.After(cutoff) {
				keep(&ds[i], "within "+p.KeepWithin.String())
			}
		}
	}
	verified, removes := false, 0
	for i := range ds {
		if ds[i].Verified && !verified {
			verified = true
			keep(&ds[i], "newest verified")
		}
		if !ds[i].Keep {
			removes++
		}
	}
	if !verified && removes > 0 && !p.AllowUnverified {
		return nil, fmt.Errorf("backup: prune would remove %d of %d snapshots, but %w, so nothing says the ones kept restore; verify one first (phivault backup verify), or allow it explicitly", removes, len(ds), ErrNothingVerified)
	}
	return ds, nil
}
