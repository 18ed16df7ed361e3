package envelope

import (
	"context"

	"github.com/phivault/phivault"
)

// NotesKeyID names the DEK that seals notes people write about alerts and
// incidents (free text that may hold PHI).
const NotesKeyID = "system/notes"

// noteAD prefixes the additional data of a sealed note.
const noteAD = "phivault sealed note"

// NoteSealer seals free-text notes (triage notes on alerts) under the DEK
// NotesKeyID, so they are at rest only as ciphertext, wrapped by the
// keyring like every record, and unreadable while the vault is sealed.
// Each note is bound to its purpose ("triage", say) and to the id of what
// it is about (an alert): a note copied to another alert, or sealed for
// another purpose, fails to open. It is safe for concurrent use by
// multiple goroutines.
type NoteSealer struct {
	box     secretBox
	purpose string
}

// NewNoteSealer returns a NoteSealer for purpose, keeping its DEK in store
// and sealed by sealer.
func NewNoteSealer(store phivault.Store, sealer *Sealer, purpose string) *NoteSealer {
	return &NoteSealer{box: secretBox{store: store, sealer: sealer, keyID: NotesKeyID, ad: noteAD, what: "note"}, purpose: purpose}
}

// Seal encrypts a note about id.
func (n *NoteSealer) Seal(id string, plaintext []byte) ([]byte, error) {
	dek, err := n.box.currentDEK(context.Background())
	if err != nil {
		return nil, err
	}
	return n.box.seal(dek, id, n.purpose, plaintext)
}

// Open decrypts a note about id made by Seal. Anything that does not
// authenticate, a note about another id included, returns an error
// wrapping phivault.ErrIntegrity.
func (n *NoteSealer) Open(id string, sealed []byte) ([]byte, error) {
	return n.box.open(context.Background(), id, n.purpose, sealed)
}
