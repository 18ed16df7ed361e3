package envelope_test

import (
	"fmt"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
)

const benchSize = 1400 // bytes: a typical Synthea Observation

// BenchmarkPlaintext is the baseline: copying the record, as a store without
// encryption would.
func BenchmarkPlaintext(b *testing.B) {
	body := testBody(benchSize)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		out := make([]byte, len(body))
		copy(out, body)
	}
}

func BenchmarkSealer_Seal(b *testing.B) {
	tx := newMemTx()
	s := envelope.New(&fakeKeyring{}, envelope.Options{})
	r := testResource("p-1")
	r.Body = testBody(benchSize)
	MustSeal(b, s, tx, r)
	b.SetBytes(int64(len(r.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Seal(ctx, tx, r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealer_Open(b *testing.B) {
	tx := newMemTx()
	s := envelope.New(&fakeKeyring{}, envelope.Options{})
	r := testResource("p-1")
	r.Body = testBody(benchSize)
	sr := MustSeal(b, s, tx, r)
	b.SetBytes(int64(len(r.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Open(ctx, tx, sr); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealer_OpenUncached measures a cache miss: key row read, unwrap
// (with a trivial fake keyring, so this is the AES-GCM key setup cost).
func BenchmarkSealer_OpenUncached(b *testing.B) {
	tx := newMemTx()
	s := envelope.New(&fakeKeyring{}, envelope.Options{CacheSize: -1})
	r := testResource("p-1")
	r.Body = testBody(benchSize)
	sr := MustSeal(b, s, tx, r)
	b.SetBytes(int64(len(r.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Open(ctx, tx, sr); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealer_Tokens(b *testing.B) {
	tx := newMemTx()
	s := envelope.New(&fakeKeyring{}, envelope.Options{})
	values := make([]phivault.IndexValue, 10)
	params := []string{"Patient.family", "Patient.given", "Patient.birthdate", "Patient.identifier", "Patient.address-postalcode"}
	for i := range values {
		values[i] = phivault.IndexValue{Param: params[i%len(params)], Value: fmt.Sprintf("value-%d", i)}
	}
	MustTokens(b, s, tx, values...)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Tokens(ctx, tx, values); err != nil {
			b.Fatal(err)
		}
	}
}
