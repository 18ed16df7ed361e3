package envelope_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
)

// FuzzOpen opens mutations of a valid sealed record: Open must never panic,
// must fail with ErrIntegrity for anything but the original ciphertext in
// its original row, and must return the original body for that.
func FuzzOpen(f *testing.F) {
	tx := newMemTx()
	s := envelope.New(&fakeKeyring{}, envelope.Options{})
	r := testResource("p-1")
	r.Body = testBody(300)
	sr, err := s.Seal(ctx, tx, r)
	if err != nil {
		f.Fatal(err)
	}
	MustSeal(f, s, tx, testResource("p-2"))
	MustSeal(f, s, tx, testResource(""))

	f.Add(sr.Ciphertext, sr.Type, sr.ID, sr.Version, sr.LastUpdated.UnixMicro(), sr.Compartment, sr.KeyID)
	flipped := bytes.Clone(sr.Ciphertext)
	flipped[40] ^= 0x10
	f.Add(flipped, sr.Type, sr.ID, sr.Version, sr.LastUpdated.UnixMicro(), sr.Compartment, sr.KeyID)
	f.Add(sr.Ciphertext[:20], sr.Type, sr.ID, sr.Version, sr.LastUpdated.UnixMicro(), sr.Compartment, sr.KeyID)
	f.Add(sr.Ciphertext, sr.Type, sr.ID, sr.Version+1, sr.LastUpdated.UnixMicro(), sr.Compartment, sr.KeyID)
	f.Add(sr.Ciphertext, sr.Type, sr.ID, sr.Version, sr.LastUpdated.UnixMicro(), "p-2", "patient/p-2")
	f.Add(sr.Ciphertext, sr.Type, sr.ID, sr.Version, sr.LastUpdated.UnixMicro(), "", "shared")
	f.Add([]byte{}, "", "", int64(0), int64(0), "", "")

	f.Fuzz(func(t *testing.T, ct []byte, typ, id string, version, lastUpdated int64, compartment, keyID string) {
		m := &phivault.SealedResource{Type: typ, ID: id, Version: version, LastUpdated: time.UnixMicro(lastUpdated).UTC(),
			Compartment: compartment, KeyID: keyID, Ciphertext: ct}
		got, err := s.Open(ctx, tx, m)
		same := bytes.Equal(ct, sr.Ciphertext) && typ == sr.Type && id == sr.ID && version == sr.Version &&
			lastUpdated == sr.LastUpdated.UnixMicro() && compartment == sr.Compartment && keyID == sr.KeyID
		switch {
		case same && (err != nil || !bytes.Equal(got.Body, r.Body)):
			t.Fatalf("Open(original) = %v, %v", got, err)
		case !same && err == nil:
			t.Fatalf("Open(mutation) returned data")
		case !same && !errors.Is(err, phivault.ErrIntegrity):
			t.Fatalf("Open(mutation) = %v, want ErrIntegrity", err)
		}
	})
}
