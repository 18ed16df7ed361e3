package plainseal_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/internal/plainseal"
)

func TestSealOpenRoundTrip(t *testing.T) {
	ctx := context.Background()
	var s plainseal.Sealer
	r := &phivault.Resource{Type: "Patient", ID: "p1", Version: 2, LastUpdated: time.Unix(1, 0).UTC(), Compartment: "p1", Body: []byte(`{"resourceType":"Patient"}`)}
	sealed, err := s.Seal(ctx, nil, r)
	if err != nil {
		t.Fatal(err)
	}
	if sealed.KeyID != plainseal.KeyID || !bytes.Equal(sealed.Ciphertext, r.Body) {
		t.Fatalf("Seal = %+v", sealed)
	}
	got, err := s.Open(ctx, nil, sealed)
	if err != nil || got.Ref() != r.Ref() || got.Version != 2 || !bytes.Equal(got.Body, r.Body) {
		t.Fatalf("Open = %+v, %v", got, err)
	}
	sealed.KeyID = "patient/p1"
	if _, err := s.Open(ctx, nil, sealed); phivault.ErrorCode(err) != phivault.EINTEGRITY {
		t.Fatalf("Open(foreign key id) = %v, want EINTEGRITY", err)
	}
}

func TestTokens(t *testing.T) {
	var s plainseal.Sealer
	toks, err := s.Tokens(context.Background(), nil, []phivault.IndexValue{
		{Param: "Patient.family", Value: "a"},
		{Param: "Patient.family", Value: "a"},
		{Param: "Patient.given", Value: "a"},
	})
	if err != nil || len(toks) != 3 {
		t.Fatalf("Tokens = %v, %v", toks, err)
	}
	if toks[0] != toks[1] || toks[0] == toks[2] {
		t.Fatalf("tokens must be equal for equal values and differ across parameters: %x", toks)
	}
}
