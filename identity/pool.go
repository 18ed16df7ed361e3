package identity

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/phivault/phivault"
)

// Defaults of NewPool and of a Hasher without a Pool.
const (
	// DefaultMemoryBudget is how much memory, in KiB, the argon2id hashes
	// of one Pool may use at once: 256 MiB, four hashes at DefaultMemory.
	DefaultMemoryBudget = 256 * 1024
	// DefaultHashWait is how long a hash waits for memory in the pool
	// before it gives up with ErrBusy.
	DefaultHashWait = 10 * time.Second
)

// ErrBusy is returned when a password hash could not get memory in its
// Pool in time (Pool.Wait), or the caller's context ended while it
// waited. The caller should answer 503 with Retry-After.
var ErrBusy = &phivault.Error{Code: phivault.EUNAVAILABLE, Message: "The sign-in service is busy. Try again in a few seconds."}

// ErrHashCost is returned for a password hash whose argon2id parameters
// ask for more memory than the Pool's whole budget or more than MaxTime
// passes. A stored hash comes from the database, not from us alone: one
// written there by hand, by an import or by an attacker must not make a
// login allocate gigabytes or spin for minutes. Such a hash cannot be
// verified; set the account's password again.
var ErrHashCost = errors.New("identity: password hash parameters over the limits")

// MaxTime is the most argon2id passes a stored hash may ask for: sixteen
// times DefaultTime.
const MaxTime = 16 * DefaultTime

// A Pool bounds the memory of the argon2id hashes running at once: each
// hash holds its parameters' memory (at most the whole budget) from the
// pool while it runs, so the hashes never use more than Budget KiB
// together, however many logins arrive. Callers wait their turn, for at
// most Wait and no longer than their context. It is safe for concurrent
// use; share one Pool between the Hashers of a process.
type Pool struct {
	// Wait is how long a hash waits for memory before ErrBusy. Default
	// DefaultHashWait; negative means as long as the context allows.
	Wait time.Duration
	// Started, if set, is called each time a hash starts, with the memory
	// in KiB that running hashes hold then, this one included. It is an
	// observation hook for tests and metrics.
	Started func(inUseKiB int64)

	budget int64
	sem    *semaphore.Weighted
	inUse  atomic.Int64
}

// NewPool returns a Pool whose hashes use at most budgetKiB KiB at once
// (DefaultMemoryBudget if zero or negative).
func NewPool(budgetKiB int64) *Pool {
	if budgetKiB <= 0 {
		budgetKiB = DefaultMemoryBudget
	}
	return &Pool{Wait: DefaultHashWait, budget: budgetKiB, sem: semaphore.NewWeighted(budgetKiB)}
}

// Budget returns the pool's memory budget in KiB.
func (p *Pool) Budget() int64 { return p.budget }

// run runs f holding memoryKiB of the pool's budget. A hash that needs
// more than the whole budget is refused with ErrHashCost before f runs:
// argon2id allocates its memory parameter whatever the pool holds, so
// running it would break the bound the pool exists for.
func (p *Pool) run(ctx context.Context, memoryKiB uint32, f func()) error {
	w := int64(memoryKiB)
	if w > p.budget {
		return fmt.Errorf("%w: %d KiB of memory, over the hash pool's budget of %d KiB", ErrHashCost, w, p.budget)
	}
	if p.Wait >= 0 {
		wait := p.Wait
		if wait == 0 {
			wait = DefaultHashWait
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, wait)
		defer cancel()
	}
	if err := p.sem.Acquire(ctx, w); err != nil {
		return ErrBusy
	}
	defer p.sem.Release(w)
	n := p.inUse.Add(w)
	defer p.inUse.Add(-w)
	if p.Started != nil {
		p.Started(n)
	}
	f()
	return nil
}
