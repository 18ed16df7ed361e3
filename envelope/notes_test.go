package envelope_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
)

func TestNoteSealer(t *testing.T) {
	f := newAccountFixture(t)
	store, sealer := f.db, f.sealer
	triage := envelope.NewNoteSealer(store, sealer, "triage")
	note := []byte("the patient is the nurse's sister-in-law, Jane Roe")
	sealed, err := triage.Seal("alert-1", note)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("Jane Roe")) {
		t.Fatal("sealed note holds its plaintext")
	}
	got, err := triage.Open("alert-1", sealed)
	if err != nil || !bytes.Equal(got, note) {
		t.Fatalf("Open = %q, %v; want the note", got, err)
	}
	other := envelope.NewNoteSealer(store, sealer, "incident")
	if _, err := other.Open("alert-1", sealed); !errors.Is(err, phivault.ErrIntegrity) {
		t.Fatalf("Open for another purpose = %v, want ErrIntegrity", err)
	}
	if _, err := triage.Open("alert-2", sealed); !errors.Is(err, phivault.ErrIntegrity) {
		t.Fatalf("Open as another alert's note = %v, want ErrIntegrity", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := triage.Open("alert-1", sealed); !errors.Is(err, phivault.ErrIntegrity) {
		t.Fatalf("Open of a changed note = %v, want ErrIntegrity", err)
	}
	var keyID string
	store.View(context.Background(), func(tx phivault.StoreTx) error {
		vs, err := tx.KeyVersions(context.Background(), envelope.NotesKeyID)
		if err == nil && len(vs) > 0 {
			keyID = vs[0].ID
		}
		return err
	})
	if keyID != envelope.NotesKeyID {
		t.Fatalf("the notes key is not in the keys table (got %q)", keyID)
	}
}
