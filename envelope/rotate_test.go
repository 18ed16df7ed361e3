package envelope_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
)

// rotateFixture puts versions 1..versions of resources Observation/o<i>
// (i < n) into compartment p00000 of a rewrapFixture, which also holds
// compartments p00001… with one Patient each.
func newRotateFixture(t *testing.T, n, versions int) (*rewrapFixture, map[obsVersion][]byte) {
	t.Helper()
	ctx := context.Background()
	f := newRewrapFixture(t, 3)
	bodies := make(map[obsVersion][]byte)
	for v := 1; v <= versions; v++ {
		err := f.db.Update(ctx, func(tx phivault.StoreTx) error {
			for i := range n {
				r := &phivault.Resource{Type: "Observation", ID: fmt.Sprintf("o%d", i), Version: int64(v),
					LastUpdated: t0.Add(time.Duration(v) * time.Minute), Compartment: "p00000",
					Body: fmt.Appendf(nil, `{"resourceType":"Observation","i":%d,"v":%d}`, i, v)}
				sr, err := f.sealer.Seal(ctx, tx, r)
				if err != nil {
					return err
				}
				if err := tx.Put(ctx, sr, nil); err != nil {
					return err
				}
				bodies[obsVersion{r.ID, r.Version}] = r.Body
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return f, bodies
}

func keyVersionIDs(t *testing.T, db phivault.Store, id string) []string {
	t.Helper()
	var ids []string
	err := db.View(context.Background(), func(tx phivault.StoreTx) error {
		ks, err := tx.KeyVersions(context.Background(), id)
		ids = nil
		for _, k := range ks {
			ids = append(ids, k.ID)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// checkBodies opens every version of the fixture's observations with a
// Sealer without cache and compares it with what was sealed; every version
// must be sealed under wantKey.
func checkBodies(t *testing.T, f *rewrapFixture, bodies map[obsVersion][]byte, wantKey string) {
	t.Helper()
	ctx := context.Background()
	s := envelope.New(f.keys, envelope.Options{CacheSize: -1})
	err := f.db.View(ctx, func(tx phivault.StoreTx) error {
		for ref, body := range bodies {
			sr, err := tx.Version(ctx, "Observation", ref.id, ref.version)
			if err != nil {
				return err
			}
			if sr.KeyID != wantKey {
				t.Errorf("%v: KeyID = %q, want %q", ref, sr.KeyID, wantKey)
			}
			r, err := s.Open(ctx, tx, sr)
			if err != nil {
				return fmt.Errorf("open %v: %w", ref, err)
			}
			if !bytes.Equal(r.Body, body) {
				t.Errorf("%v: body = %s, want %s", ref, r.Body, body)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// obsVersion names one version of an Observation.
type obsVersion struct {
	id      string
	version int64
}

func TestSealer_RotateKey(t *testing.T) {
	ctx := context.Background()
	f, bodies := newRotateFixture(t, 10, 3)
	s := envelope.New(f.keys, envelope.Options{RotateBatch: 7})
	before := keyVersionIDs(t, f.db, "patient/p00001")
	var seen []int
	n, err := s.RotateKey(ctx, f.db, "p00000", func(done, total int) {
		if total != 31 {
			t.Errorf("progress total = %d, want 31", total)
		}
		seen = append(seen, done)
	})
	// 10 observations × 3 versions + the Patient.
	if err != nil || n != 31 {
		t.Fatalf("RotateKey() = %d, %v; want 31, nil", n, err)
	}
	if want := []int{7, 14, 21, 28, 31}; !slices.Equal(seen, want) {
		t.Errorf("progress = %v, want %v", seen, want)
	}
	if got := keyVersionIDs(t, f.db, "patient/p00000"); !slices.Equal(got, []string{"patient/p00000#2"}) {
		t.Errorf("KeyVersions after rotation = %q, want only patient/p00000#2", got)
	}
	checkBodies(t, f, bodies, "patient/p00000#2")
	if got := keyVersionIDs(t, f.db, "patient/p00001"); !slices.Equal(got, before) {
		t.Errorf("other compartment's keys = %q, want %q", got, before)
	}
	// New writes use the new key; a second rotation makes a third version.
	if _, err := s.RotateKey(ctx, f.db, "p00000", nil); err != nil {
		t.Fatal(err)
	}
	if got := keyVersionIDs(t, f.db, "patient/p00000"); !slices.Equal(got, []string{"patient/p00000#3"}) {
		t.Errorf("KeyVersions after a second rotation = %q, want only patient/p00000#3", got)
	}
	checkBodies(t, f, bodies, "patient/p00000#3")
}

// TestSealer_RotateKey_Resume interrupts a rotation after its first batch
// and runs it again: the second run continues under the same new key.
func TestSealer_RotateKey_Resume(t *testing.T) {
	f, bodies := newRotateFixture(t, 10, 2)
	s := envelope.New(f.keys, envelope.Options{RotateBatch: 5})
	ctx, cancel := context.WithCancel(context.Background())
	n, err := s.RotateKey(ctx, f.db, "p00000", func(done, total int) { cancel() })
	if err == nil || n != 5 {
		t.Fatalf("interrupted RotateKey() = %d, %v; want 5 and an error", n, err)
	}
	if got := keyVersionIDs(t, f.db, "patient/p00000"); !slices.Equal(got, []string{"patient/p00000", "patient/p00000#2"}) {
		t.Fatalf("KeyVersions mid-rotation = %q", got)
	}
	// Mid-rotation, old and new versions both open (from a fresh Sealer).
	checkMixed(t, f, bodies)
	n, err = s.RotateKey(context.Background(), f.db, "p00000", nil)
	if err != nil || n != 21-5 {
		t.Fatalf("resumed RotateKey() = %d, %v; want %d, nil", n, err, 21-5)
	}
	if got := keyVersionIDs(t, f.db, "patient/p00000"); !slices.Equal(got, []string{"patient/p00000#2"}) {
		t.Errorf("KeyVersions after resuming = %q, want only patient/p00000#2", got)
	}
	checkBodies(t, f, bodies, "patient/p00000#2")
}

func checkMixed(t *testing.T, f *rewrapFixture, bodies map[obsVersion][]byte) {
	t.Helper()
	ctx := context.Background()
	s := envelope.New(f.keys, envelope.Options{CacheSize: -1})
	keys := map[string]int{}
	err := f.db.View(ctx, func(tx phivault.StoreTx) error {
		for i := range 10 {
			for v := int64(1); v <= 2; v++ {
				sr, err := tx.Version(ctx, "Observation", fmt.Sprintf("o%d", i), v)
				if err != nil {
					return err
				}
				keys[sr.KeyID]++
				r, err := s.Open(ctx, tx, sr)
				if err != nil {
					return err
				}
				if !bytes.Equal(r.Body, bodies[obsVersion{sr.ID, sr.Version}]) {
					t.Errorf("%s/%d mid-rotation: body = %s", sr.ID, sr.Version, r.Body)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Errorf("mid-rotation versions are sealed under %v, want both key versions", keys)
	}
}

func TestSealer_RotateKey_Shredded(t *testing.T) {
	ctx := context.Background()
	f, _ := newRotateFixture(t, 2, 1)
	if err := f.db.Update(ctx, func(tx phivault.StoreTx) error { return f.sealer.Shred(ctx, tx, "p00000", t0) }); err != nil {
		t.Fatal(err)
	}
	if _, err := f.sealer.RotateKey(ctx, f.db, "p00000", nil); !errors.Is(err, phivault.ErrShredded) {
		t.Errorf("RotateKey(shredded) = %v, want ErrShredded", err)
	}
	if got := keyVersionIDs(t, f.db, "patient/p00000"); len(got) != 0 {
		t.Errorf("keys after RotateKey(shredded) = %q, want none", got)
	}
	// No key, nothing sealed: nothing to do.
	if n, err := f.sealer.RotateKey(ctx, f.db, "nobody", nil); err != nil || n != 0 {
		t.Errorf("RotateKey(no key) = %d, %v; want 0, nil", n, err)
	}
}

// TestSealer_RotateKey_Tampered stops at a version that does not open and
// keeps the old key, so nothing becomes unreadable.
func TestSealer_RotateKey_Tampered(t *testing.T) {
	ctx := context.Background()
	f, _ := newRotateFixture(t, 3, 1)
	err := f.db.Update(ctx, func(tx phivault.StoreTx) error {
		sr, err := tx.Version(ctx, "Observation", "o1", 1)
		if err != nil {
			return err
		}
		bad := *sr
		bad.Ciphertext = bytes.Clone(sr.Ciphertext)
		bad.Ciphertext[20] ^= 1
		bad.KeyID = "patient/p00000"
		// Reseal is the only way to change a stored ciphertext.
		return tx.Reseal(ctx, sr, &bad)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.sealer.RotateKey(ctx, f.db, "p00000", nil)
	if !errors.Is(err, phivault.ErrIntegrity) {
		t.Errorf("RotateKey(tampered) = %v, want ErrIntegrity", err)
	}
	if got := keyVersionIDs(t, f.db, "patient/p00000"); !slices.Contains(got, "patient/p00000") {
		t.Errorf("keys after a failed rotation = %q, want the old key kept", got)
	}
}
