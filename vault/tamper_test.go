package vault_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/internal/vaulttest"
	"github.com/phivault/phivault/keyring"
	"github.com/phivault/phivault/sqlite"
	"github.com/phivault/phivault/vault"
)

// mustExec runs a statement on the store's database file directly, as an
// attacker with write access to the file would.
func mustExec(tb testing.TB, path, query string, args ...any) {
	tb.Helper()
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		tb.Fatal(err)
	}
	defer raw.Close()
	res, err := raw.Exec(query, args...)
	if err != nil {
		tb.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		tb.Fatalf("%s changed %d rows, want 1", query, n)
	}
}

// TestService_Tamper changes stored ciphertexts behind the vault's back:
// every read of a changed record must fail with an integrity error and
// return no data.
func TestService_Tamper(t *testing.T) {
	ctx := context.Background()
	s, db := MustOpenService(t)
	a := mustCreate(t, s, "Patient", fmt.Sprintf(patientJSON, "T1", "Tamper", "1990-01-01"))
	b := mustCreate(t, s, "Patient", fmt.Sprintf(patientJSON, "T2", "Other", "1991-01-01"))
	obs := mustCreate(t, s, "Observation", fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/%s"}}`, a.ID))
	readErr := func(typ, id string) error {
		res, err := s.Read(ctx, typ, id)
		if res != nil {
			t.Errorf("Read(%s/%s) returned data from a tampered row", typ, id)
		}
		return err
	}

	t.Run("FlipByte", func(t *testing.T) {
		var ct []byte
		raw, _ := sql.Open("sqlite", "file:"+db.Path)
		if err := raw.QueryRow(`SELECT ciphertext FROM versions WHERE type='Observation' AND id=?`, obs.ID).Scan(&ct); err != nil {
			t.Fatal(err)
		}
		raw.Close()
		for _, i := range []int{0, 1, 13, len(ct) / 2, len(ct) - 1} {
			bad := append([]byte(nil), ct...)
			bad[i] ^= 0x01
			mustExec(t, db.Path, `UPDATE versions SET ciphertext=? WHERE type='Observation' AND id=?`, bad, obs.ID)
			wantCode(t, readErr("Observation", obs.ID), phivault.EINTEGRITY)
		}
		mustExec(t, db.Path, `UPDATE versions SET ciphertext=? WHERE type='Observation' AND id=?`, ct, obs.ID)
		if _, err := s.Read(ctx, "Observation", obs.ID); err != nil {
			t.Fatalf("Read after restoring = %v", err)
		}
	})
	t.Run("MoveRow", func(t *testing.T) {
		// Copy patient a's ciphertext into patient b's row.
		mustExec(t, db.Path, `UPDATE versions SET ciphertext=(SELECT ciphertext FROM versions WHERE type='Patient' AND id=?) WHERE type='Patient' AND id=?`, a.ID, b.ID)
		wantCode(t, readErr("Patient", b.ID), phivault.EINTEGRITY)
	})
	t.Run("MoveCompartment", func(t *testing.T) {
		// Claim the observation belongs to patient b.
		mustExec(t, db.Path, `UPDATE versions SET compartment=?, key_id=? WHERE type='Observation' AND id=?`, b.ID, "patient/"+b.ID, obs.ID)
		wantCode(t, readErr("Observation", obs.ID), phivault.EINTEGRITY)
	})
}

// TestService_PlantedUnboundWrap is the follow-up review's finding on key
// wraps. A vault upgraded from before wraps were bound rebinds its keys at
// start and the keyring then refuses unbound (format-1) wraps. Someone who
// can write the database and kept a key row from before (an old backup:
// patient a's DEK, wrapped unbound) plants it with bound=0 over patient
// b's key, into a compartment not created yet, and back over patient a's
// key after a's shred. Every read and write there must fail with an
// integrity error from the keyring, and nothing of the victims is served
// or sealed under the planted key.
func TestService_PlantedUnboundWrap(t *testing.T) {
	ctx := context.Background()
	obsJSON := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/%s"}}`
	// setUp makes the vault as it stood after the upgrade: keys stored by
	// the version before binding (that version's own wraps of patient/a,
	// patient/b, shared and index), patients a and b with an Observation
	// each, and then the rebind that the server runs at start.
	setUp := func(t *testing.T) (*vault.Service, *sqlite.DB, *vaulttest.PreBinding) {
		t.Helper()
		dir := t.TempDir()
		p := vaulttest.PreBindingKeyring(t, dir)
		db, _ := vaulttest.SQLite(t, dir)
		err := db.Update(ctx, func(tx phivault.StoreTx) error {
			for _, w := range p.Wraps {
				if _, err := tx.PutKey(ctx, &phivault.WrappedKey{ID: w.Name, KEKID: p.KEKID, Wrapped: w.Wrapped, Created: time.Now()}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		s := vault.New(db, vaulttest.Sealer(t, db, p.Keys, envelope.Options{}))
		for _, id := range []string{"a", "b"} {
			if _, _, err := s.Update(ctx, "Patient", id, fmt.Appendf(nil, `{"resourceType":"Patient","id":%q,"name":[{"family":"Victim-%s"}]}`, id, id), phivault.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			mustCreate(t, s, "Observation", fmt.Sprintf(obsJSON, id))
		}
		if _, err := envelope.EndUnbound(ctx, db, vaulttest.Refuser(p.Keys), envelope.RewrapOptions{}); err != nil {
			t.Fatalf("EndUnbound = %v", err)
		}
		if _, err := s.Read(ctx, "Patient", "b"); err != nil {
			t.Fatalf("Read(Patient/b) after the rebind = %v", err)
		}
		return s, db, p
	}
	// restarted is the vault as the server opens it next, with no key
	// in memory.
	restarted := func(t *testing.T, db *sqlite.DB, p *vaulttest.PreBinding) *vault.Service {
		return vault.New(db, vaulttest.Sealer(t, db, p.Keys, envelope.Options{}))
	}
	// refused checks that err is the keyring refusing the planted wrap.
	refused := func(t *testing.T, what string, err error) {
		t.Helper()
		if phivault.ErrorCode(err) != phivault.EINTEGRITY || !errors.Is(err, keyring.ErrUnwrap) {
			t.Errorf("%s = %v (code %s), want the keyring's integrity error (keyring.ErrUnwrap)", what, err, phivault.ErrorCode(err))
		}
	}
	versions := func(t *testing.T, db *sqlite.DB, compartment string) (n int) {
		t.Helper()
		raw, _ := sql.Open("sqlite", "file:"+db.Path)
		defer raw.Close()
		if err := raw.QueryRow(`SELECT count(*) FROM versions WHERE compartment=?`, compartment).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	oldA := func(p *vaulttest.PreBinding) []byte { return p.Wraps[0].Wrapped } // patient/a, as stored before binding

	t.Run("OverAnotherCompartment", func(t *testing.T) {
		_, db, p := setUp(t)
		mustExec(t, db.Path, `UPDATE keys SET kek_id=?, wrapped=?, bound=0 WHERE id='patient/b'`, string(p.KEKID), oldA(p))
		s := restarted(t, db, p)
		res, err := s.Read(ctx, "Patient", "b")
		if res != nil {
			t.Errorf("Read(Patient/b) under the planted key returned %s", res.Body)
		}
		refused(t, "Read(Patient/b) under a planted unbound wrap", err)
		before := versions(t, db, "b")
		_, _, err = s.Create(ctx, "Observation", fmt.Appendf(nil, obsJSON, "b"), phivault.CreateOptions{})
		refused(t, "Create(Observation of b) under a planted unbound wrap", err)
		if after := versions(t, db, "b"); after != before {
			t.Errorf("compartment b holds %d versions after the refused write, want %d: something was sealed under a's key", after, before)
		}
	})
	t.Run("IntoNewCompartment", func(t *testing.T) {
		// PutKey keeps a row that is there (ON CONFLICT DO NOTHING), so
		// a key planted before the compartment exists would be its key.
		_, db, p := setUp(t)
		mustExec(t, db.Path, `INSERT INTO keys (id, kek_id, wrapped, created, bound) VALUES ('patient/c', ?, ?, 0, 0)`, string(p.KEKID), oldA(p))
		s := restarted(t, db, p)
		_, _, err := s.Update(ctx, "Patient", "c", []byte(`{"resourceType":"Patient","id":"c","name":[{"family":"Newcomer"}]}`), phivault.UpdateOptions{})
		refused(t, "Update(Patient/c) into a compartment with a planted unbound wrap", err)
		if n := versions(t, db, "c"); n != 0 {
			t.Errorf("compartment c holds %d versions, want none: its records were sealed under a's key", n)
		}
	})
	t.Run("AfterShred", func(t *testing.T) {
		s, db, p := setUp(t)
		if _, err := s.Shred(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		mustExec(t, db.Path, `INSERT INTO keys (id, kek_id, wrapped, created, bound) VALUES ('patient/a', ?, ?, 0, 0)`, string(p.KEKID), oldA(p))
		mustExec(t, db.Path, `DELETE FROM shredded WHERE compartment='a'`)
		s = restarted(t, db, p)
		res, err := s.Read(ctx, "Patient", "a")
		if res != nil {
			t.Errorf("Read(Patient/a) after its shred returned %s", res.Body)
		}
		refused(t, "Read(Patient/a) after its shred, under the planted wrap", err)
	})
}
