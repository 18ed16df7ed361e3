package vault_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/phivault/phivault"
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
