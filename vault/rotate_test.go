package vault_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/internal/vaulttest"
	"github.com/phivault/phivault/keyring"
	"github.com/phivault/phivault/sqlite"
	"github.com/phivault/phivault/vault"
)

// rotateStack is the real stack (SQLite store, file keyring, envelope
// Sealer) with a few Synthea patients imported.
type rotateStack struct {
	db       *sqlite.DB
	dbPath   string
	keys     *keyring.Reloading
	s        *vault.Service
	patients []importedPatient
}

func newRotateStack(t *testing.T, batch int) *rotateStack {
	t.Helper()
	dir := t.TempDir()
	st := &rotateStack{}
	st.keys, _ = vaulttest.Keyring(t, dir)
	st.db, st.dbPath = vaulttest.SQLite(t, dir)
	st.s = vault.New(st.db, vaulttest.Sealer(t, st.db, st.keys, envelope.Options{RotateBatch: batch}))
	st.patients = importSynthea(t, st.s, 3)
	for _, p := range st.patients {
		if p.id == "" {
			t.Fatal("a bundle had no Patient")
		}
	}
	return st
}

// compartment returns the refs (Type/id) of p's compartment, and gives a
// few of its Observations more history (two updates each).
func (st *rotateStack) compartment(t *testing.T, p importedPatient, updates int) []string {
	t.Helper()
	ctx := context.Background()
	var mine []string
	for _, ref := range p.refs {
		typ, id, _ := strings.Cut(ref, "/")
		r, err := st.s.Read(ctx, typ, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Compartment != p.id {
			continue
		}
		mine = append(mine, ref)
		if typ == "Observation" && updates > 0 {
			updates--
			for range 2 {
				if _, _, err := st.s.Update(ctx, typ, id, r.Body, phivault.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return mine
}

// versionBodies reads every version of refs through the service.
func (st *rotateStack) versionBodies(t *testing.T, refs []string) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	out := make(map[string][]byte)
	for _, ref := range refs {
		typ, id, _ := strings.Cut(ref, "/")
		h, err := st.s.History(ctx, phivault.HistoryQuery{Type: typ, ID: id, Count: vault.MaxCount})
		if err != nil {
			t.Fatalf("History(%s) = %v", ref, err)
		}
		for _, v := range h.Versions {
			key := fmt.Sprintf("%s/%d", ref, v.Version)
			out[key+" history"] = v.Body
			r, err := st.s.VRead(ctx, typ, id, v.Version)
			if err != nil {
				t.Fatalf("VRead(%s) = %v", key, err)
			}
			out[key] = r.Body
		}
	}
	return out
}

func (st *rotateStack) key(t *testing.T, id string) *phivault.WrappedKey {
	t.Helper()
	var k *phivault.WrappedKey
	err := st.db.View(context.Background(), func(tx phivault.StoreTx) (err error) {
		k, err = tx.Key(context.Background(), id)
		return err
	})
	if err != nil {
		t.Fatalf("Key(%s) = %v", id, err)
	}
	return k
}

// storedVersions returns every stored version (tombstones excluded) of
// refs, straight from the store.
func (st *rotateStack) storedVersions(t *testing.T, refs []string) []*phivault.SealedResource {
	t.Helper()
	ctx := context.Background()
	var out []*phivault.SealedResource
	err := st.db.View(ctx, func(tx phivault.StoreTx) error {
		for _, ref := range refs {
			typ, id, _ := strings.Cut(ref, "/")
			vs, _, err := tx.History(ctx, phivault.HistoryFilter{Type: typ, ID: id})
			if err != nil {
				return err
			}
			for _, v := range vs {
				if !v.Deleted {
					out = append(out, v)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// opensWith counts the versions in vs that a Sealer opens when the stored
// key they name is replaced by k: an attacker holding k (and the KEK that
// unwraps it) against the stored ciphertext. Each attempt unwraps k with
// the keyring and runs AES-GCM with the envelope's additional data.
func (st *rotateStack) opensWith(t *testing.T, k *phivault.WrappedKey, vs []*phivault.SealedResource) int {
	t.Helper()
	ctx := context.Background()
	fresh := envelope.New(st.keys, envelope.Options{CacheSize: -1})
	opened := 0
	err := st.db.View(ctx, func(tx phivault.StoreTx) error {
		for _, sr := range vs {
			_, err := fresh.Open(ctx, keyOverride{tx, sr.KeyID, k}, sr)
			if err == nil {
				opened++
			} else if phivault.ErrorCode(err) != phivault.EINTEGRITY {
				return fmt.Errorf("%s/%s/%d: %w", sr.Type, sr.ID, sr.Version, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return opened
}

// TestService_RotatePatientKey rotates one Synthea patient's data key while
// readers and a writer work on that patient, and proves the rotation: every
// version and history entry reads back unchanged; no stored version of the
// patient opens with the old DEK, which an attacker captured (wrapped)
// before the rotation and can unwrap with the KEK; the old key row is gone;
// and the other patients' keys and records are untouched.
func TestService_RotatePatientKey(t *testing.T) {
	ctx := context.Background()
	st := newRotateStack(t, 25)
	victim, other := st.patients[1], st.patients[0]
	mine := st.compartment(t, victim, 5)
	theirs := st.compartment(t, other, 0)
	oldKey := st.key(t, "patient/"+victim.id) // what the attacker stole
	otherKey := st.key(t, "patient/"+other.id)
	before := st.versionBodies(t, mine)
	otherBefore := st.versionBodies(t, theirs)

	// Positive control: the stolen key opens every stored version now.
	vs := st.storedVersions(t, mine)
	if n := st.opensWith(t, oldKey, vs); n != len(vs) {
		t.Fatalf("before rotation the old key opens %d of %d versions, want all", n, len(vs))
	}

	// Concurrent readers of the whole compartment and a writer updating
	// one of its Observations.
	var hot string
	for _, ref := range mine {
		if strings.HasPrefix(ref, "Observation/") {
			hot = strings.TrimPrefix(ref, "Observation/")
		}
	}
	hotBody := before[fmt.Sprintf("Observation/%s/1", hot)]
	stop := make(chan struct{})
	errs := make(chan error, 3)
	var wg sync.WaitGroup
	var written []int64
	for r := range 2 {
		wg.Go(func() {
			for i := r; ; i++ {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				typ, id, _ := strings.Cut(mine[i%len(mine)], "/")
				if _, err := st.s.Read(ctx, typ, id); err != nil {
					errs <- fmt.Errorf("concurrent Read(%s/%s) = %w", typ, id, err)
					return
				}
				if _, err := st.s.VRead(ctx, typ, id, 1); err != nil {
					errs <- fmt.Errorf("concurrent VRead(%s/%s/1) = %w", typ, id, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-stop:
				errs <- nil
				return
			default:
			}
			r, _, err := st.s.Update(ctx, "Observation", hot, hotBody, phivault.UpdateOptions{})
			if err != nil {
				errs <- fmt.Errorf("concurrent Update = %w", err)
				return
			}
			written = append(written, r.Version)
		}
	})

	var progress [][2]int
	err := st.s.RotatePatientKey(ctx, victim.id, func(done, total int) {
		progress = append(progress, [2]int{done, total})
	})
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if err != nil {
		t.Fatalf("RotatePatientKey = %v", err)
	}
	if len(progress) < 2 || progress[len(progress)-1][0] < len(vs) {
		t.Errorf("progress = %v, want several batches ending at >= %d", progress, len(vs))
	}
	t.Logf("rotated %d versions in %d batches while %d versions were written concurrently", len(vs), len(progress), len(written))

	// Every version and history entry reads back unchanged, including the
	// versions written during the rotation.
	after := st.versionBodies(t, mine)
	for k, want := range before {
		if !bytes.Equal(after[k], want) {
			t.Errorf("%s changed by the rotation", k)
		}
	}
	if len(after) != len(before)+2*len(written) {
		t.Errorf("%d versions and history entries after, want %d", len(after), len(before)+2*len(written))
	}

	// In the database: everything is under the new key; the old key opens
	// none of it and is gone.
	newID := "patient/" + victim.id + "#2"
	vs = st.storedVersions(t, mine)
	for _, sr := range vs {
		if sr.KeyID != newID {
			t.Errorf("%s/%s/%d is sealed under %s, want %s", sr.Type, sr.ID, sr.Version, sr.KeyID, newID)
		}
	}
	if n := st.opensWith(t, oldKey, vs); n != 0 {
		t.Errorf("after rotation the old key opens %d of %d stored versions, want 0", n, len(vs))
	}
	t.Logf("%d stored versions of the rotated patient; none opens with the captured old key", len(vs))
	err = st.db.View(ctx, func(tx phivault.StoreTx) error {
		if _, err := tx.Key(ctx, oldKey.ID); !errors.Is(err, phivault.ErrNotFound) {
			t.Errorf("old key row after rotation: %v, want ErrNotFound", err)
		}
		ks, err := tx.KeyVersions(ctx, oldKey.ID)
		if len(ks) != 1 || ks[0].ID != newID {
			t.Errorf("key versions after rotation = %v, want only %s", ks, newID)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	// Other patients are untouched: same key row, same keys on their
	// versions, same contents.
	if k := st.key(t, otherKey.ID); k.KEKID != otherKey.KEKID || !bytes.Equal(k.Wrapped, otherKey.Wrapped) {
		t.Error("the other patient's key row changed")
	}
	for _, sr := range st.storedVersions(t, theirs) {
		if sr.KeyID != otherKey.ID {
			t.Errorf("other patient's %s/%s/%d is sealed under %s", sr.Type, sr.ID, sr.Version, sr.KeyID)
		}
	}
	otherAfter := st.versionBodies(t, theirs)
	for k, want := range otherBefore {
		if !bytes.Equal(otherAfter[k], want) {
			t.Errorf("other patient's %s changed", k)
		}
	}
}

// TestService_RotatePatientKey_Resume interrupts a rotation after its first
// batch (as a crash would), checks that reads work mid-rotation, and runs it
// again: the second run finishes under the same new key.
func TestService_RotatePatientKey_Resume(t *testing.T) {
	st := newRotateStack(t, 10)
	victim := st.patients[2]
	mine := st.compartment(t, victim, 3)
	before := st.versionBodies(t, mine)
	total := len(st.storedVersions(t, mine))

	ctx, cancel := context.WithCancel(context.Background())
	batches := 0
	err := st.s.RotatePatientKey(ctx, victim.id, func(done, total int) {
		batches++
		cancel()
	})
	if err == nil || batches != 1 {
		t.Fatalf("interrupted RotatePatientKey = %v after %d batches, want an error after 1", err, batches)
	}
	mid := map[string]int{}
	for _, sr := range st.storedVersions(t, mine) {
		mid[sr.KeyID]++
	}
	if want := map[string]int{"patient/" + victim.id + "#2": 10, "patient/" + victim.id: total - 10}; !maps.Equal(mid, want) {
		t.Fatalf("keys of stored versions mid-rotation = %v, want %v", mid, want)
	}
	for k, v := range st.versionBodies(t, mine) {
		if !bytes.Equal(v, before[k]) {
			t.Errorf("%s differs mid-rotation", k)
		}
	}

	done := 0
	if err := st.s.RotatePatientKey(context.Background(), victim.id, func(d, _ int) { done = d }); err != nil {
		t.Fatalf("resumed RotatePatientKey = %v", err)
	}
	if done != total-10 {
		t.Errorf("resumed rotation re-encrypted %d versions, want the remaining %d", done, total-10)
	}
	var ids []string
	for _, sr := range st.storedVersions(t, mine) {
		if !slices.Contains(ids, sr.KeyID) {
			ids = append(ids, sr.KeyID)
		}
	}
	if want := []string{"patient/" + victim.id + "#2"}; !slices.Equal(ids, want) {
		t.Errorf("keys of stored versions after resuming = %q, want %q", ids, want)
	}
	for k, v := range st.versionBodies(t, mine) {
		if !bytes.Equal(v, before[k]) {
			t.Errorf("%s differs after the rotation", k)
		}
	}

	// Unknown and shredded patients.
	if err := st.s.RotatePatientKey(context.Background(), "no-such-patient", nil); phivault.ErrorCode(err) != phivault.ENOTFOUND {
		t.Errorf("RotatePatientKey(unknown) = %v, want ENOTFOUND", err)
	}
	if _, err := st.s.Shred(context.Background(), victim.id); err != nil {
		t.Fatal(err)
	}
	if err := st.s.RotatePatientKey(context.Background(), victim.id, nil); !errors.Is(err, phivault.ErrShredded) {
		t.Errorf("RotatePatientKey(shredded) = %v, want ErrShredded", err)
	}
}
