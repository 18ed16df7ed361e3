package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// A Shred is a tombstone: the patient compartment was crypto-shredded at
// At. A target keeps its tombstones beside its snapshots, write-once and
// never pruned, and every restore from the target shreds them again in the
// restored folder, whatever the age of the snapshot: a backup cannot bring
// back a patient shredded after it was taken (docs/backup.md).
type Shred struct {
	Compartment string    `json:"compartment"`
	At          time.Time `json:"at"`
}

// shredName is the object name of the tombstone of compartment: its HMAC
// under the id key, so a holder of the target without the keys learns
// neither who was shredded nor whether a given patient was.
func (k *KeySet) shredName(compartment string) string {
	return "shreds/" + k.chunkID([]byte("phivault-backup shred\x00"+compartment))
}

func shredAD(name string) string { return "phivault-backup " + name }

// RecordShreds stores a tombstone in t for each shred t does not hold yet
// and returns how many it wrote. It is idempotent: recording a shred twice
// keeps the first.
func RecordShreds(ctx context.Context, t Target, keys *KeySet, rand io.Reader, shreds []Shred) (int, error) {
	if len(shreds) == 0 {
		return 0, nil
	}
	names, err := t.List(ctx, "shreds/")
	if err != nil {
		return 0, err
	}
	have := make(map[string]bool, len(names))
	for _, n := range names {
		have[n] = true
	}
	wrote := 0
	for _, s := range shreds {
		if s.Compartment == "" {
			return wrote, errors.New("backup: a shred names no compartment")
		}
		name := keys.shredName(s.Compartment)
		if have[name] {
			continue
		}
		b, _ := json.Marshal(Shred{Compartment: s.Compartment, At: s.At.UTC()})
		obj, err := keys.seal(rand, b, shredAD(name))
		if err != nil {
			return wrote, err
		}
		switch err := t.Put(ctx, name, obj); {
		case errors.Is(err, ErrExist): // recorded alongside
		case err != nil:
			return wrote, fmt.Errorf("backup: record a shred: %w", err)
		default:
			wrote++
		}
		have[name] = true
	}
	return wrote, nil
}

// Shreds returns the tombstones of t, oldest first. Each must open under
// keys and name the compartment its object name is made from: a tombstone
// that does not is refused (ErrCorrupt), for a restore that skipped it
// would bring a shredded patient back.
func Shreds(ctx context.Context, t Target, keys *KeySet) ([]Shred, error) {
	names, err := t.List(ctx, "shreds/")
	if err != nil {
		return nil, err
	}
	out := make([]Shred, 0, len(names))
	for _, name := range names {
		obj, err := t.Get(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("backup: tombstone %s: %w", name, err)
		}
		b, err := keys.open(obj, shredAD(name))
		if err != nil {
			return nil, fmt.Errorf("backup: tombstone %s: %w", name, err)
		}
		var s Shred
		if err := json.Unmarshal(b, &s); err != nil || s.Compartment == "" || keys.shredName(s.Compartment) != name {
			return nil, fmt.Errorf("backup: tombstone %s: %w: it does not name the patient it is filed under", name, ErrCorrupt)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Shred) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.Compartment, b.Compartment)
	})
	return out, nil
}
