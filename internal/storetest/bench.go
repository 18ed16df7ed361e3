package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault"
)

// Shape of the import benchmark: one transaction per bundle-sized batch.
const (
	importBatch     = 200
	importTokens    = 6
	ciphertextBytes = 2048
	preloaded       = 2000
	perToken        = 10 // resources sharing each token in the Find benchmark
)

// Bench runs the shared benchmarks against the Store returned by open, which
// must return a new, empty store for each benchmark.
func Bench(b *testing.B, open func(b *testing.B) phivault.Store) {
	b.Run("PutImport", func(b *testing.B) { benchPutImport(b, open(b)) })
	b.Run("Current", func(b *testing.B) { benchCurrent(b, open(b)) })
	b.Run("FindToken", func(b *testing.B) { benchFindToken(b, open(b)) })
}

func bigResource(rng *rand.Rand, id string, lu time.Time) *phivault.SealedResource {
	ct := make([]byte, ciphertextBytes)
	for i := range ct {
		ct[i] = byte(rng.Uint32())
	}
	return &phivault.SealedResource{Type: "Observation", ID: id, Version: 1, LastUpdated: lu,
		Compartment: "p" + id[:4], KeyID: "patient/p" + id[:4], Ciphertext: ct}
}

// importTokensFor returns six tokens like an Observation's: two shared by
// many resources (status, code), four nearly unique.
func importTokensFor(i int) []phivault.Token {
	return []phivault.Token{
		Tok("status=final"), Tok(fmt.Sprintf("code=%d", i%50)),
		Tok(fmt.Sprintf("subject=%d", i/20)), Tok(fmt.Sprintf("encounter=%d", i/5)),
		Tok(fmt.Sprintf("identifier=%d", i)), Tok(fmt.Sprintf("date=%d", i%365)),
	}
}

// preload stores n resources in import-sized transactions.
func preload(b *testing.B, s phivault.Store, n int, tokens func(i int) []phivault.Token) {
	rng := rand.New(rand.NewPCG(1, 1))
	for start := 0; start < n; start += importBatch {
		MustUpdate(b, s, func(tx phivault.StoreTx) error {
			for i := start; i < min(start+importBatch, n); i++ {
				r := bigResource(rng, fmt.Sprintf("%08d", i), t0.Add(time.Duration(i)*time.Millisecond))
				if err := tx.Put(context.Background(), r, tokens(i)); err != nil {
					return err
				}
			}
			return nil
		})
	}
}

// benchPutImport measures bulk loading: each op is one Update of 200 new
// resources with six tokens each. It reports resources/s.
func benchPutImport(b *testing.B, s phivault.Store) {
	rng := rand.New(rand.NewPCG(2, 2))
	// Build the resources up front so the benchmark times the store only.
	batch := make([]*phivault.SealedResource, importBatch)
	for i := range batch {
		batch[i] = bigResource(rng, fmt.Sprintf("%08d", i), t0)
	}
	next := 0
	b.ResetTimer()
	for b.Loop() {
		MustUpdate(b, s, func(tx phivault.StoreTx) error {
			for i, r := range batch {
				n := next + i
				r.ID = fmt.Sprintf("%08d", n)
				if err := tx.Put(context.Background(), r, importTokensFor(n)); err != nil {
					return err
				}
			}
			return nil
		})
		next += importBatch
	}
	b.ReportMetric(float64(next)/b.Elapsed().Seconds(), "resources/s")
}

// benchCurrent measures reads by id from parallel goroutines, one View each.
func benchCurrent(b *testing.B, s phivault.Store) {
	preload(b, s, preloaded, func(int) []phivault.Token { return nil })
	var seed atomic.Uint64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(seed.Add(1), 4))
		for pb.Next() {
			id := fmt.Sprintf("%08d", rng.IntN(preloaded))
			err := s.View(context.Background(), func(tx phivault.StoreTx) error {
				_, err := tx.Current(context.Background(), "Observation", id)
				return err
			})
			if err != nil {
				b.Errorf("Current(%s) = %v", id, err)
				return
			}
		}
	})
}

// benchFindToken measures a search by one token matching perToken resources.
func benchFindToken(b *testing.B, s phivault.Store) {
	preload(b, s, preloaded, func(i int) []phivault.Token {
		return append(importTokensFor(i), Tok(fmt.Sprintf("group=%d", i/perToken)))
	})
	rng := rand.New(rand.NewPCG(5, 5))
	b.ResetTimer()
	for b.Loop() {
		f := phivault.ResourceFilter{Types: []string{"Observation"},
			Tokens: [][]phivault.Token{{Tok(fmt.Sprintf("group=%d", rng.IntN(preloaded/perToken)))}}}
		err := s.View(context.Background(), func(tx phivault.StoreTx) error {
			rs, err := tx.Find(context.Background(), f)
			if err == nil && len(rs) != perToken {
				err = fmt.Errorf("got %d resources, want %d", len(rs), perToken)
			}
			return err
		})
		if err != nil {
			b.Fatalf("Find() = %v", err)
		}
	}
}
