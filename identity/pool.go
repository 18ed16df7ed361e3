package identity

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
//
// # Fairness
//
// Hashes that no account vouches for may use only the shared half of the
// budget (SharedBudget): those of a login for an unknown username, for
// an account that is locked, backing off or failed within its lockout
// period, and every attempt at an account beyond the one it already has
// in the pool. The rest of the budget is kept for the first attempt at
// an account with no recent failure, and for setting passwords. A flood
// of failed logins, from any number of sources, so fills at most half the
// pool: a person whose account it does not name finds memory at once,
// behind no one in the flood, unless other such people fill the reserve
// themselves. An attacker who names an account pushes
// that account into the shared half until its lockout period passes (or
// locks it, see Authenticator), and gets one hash in the reserved half
// per account for it. The reserve holds a hash only if the budget holds
// two (the default holds four).
type Pool struct {
	// Wait is how long a hash waits for memory before ErrBusy. Default
	// DefaultHashWait; negative means as long as the context allows.
	Wait time.Duration
	// Started, if set, is called each time a hash starts, with the context
	// of the call that asked for it and the memory in KiB that running
	// hashes hold then, this one included. It is an observation hook for
	// tests and metrics.
	Started func(ctx context.Context, inUseKiB int64)

	budget, sharedBudget int64
	all                  *semaphore.Weighted // the whole budget
	shared               *semaphore.Weighted // what hashes no account vouches for may hold
	inUse, waiting       atomic.Int64

	mu       sync.Mutex
	accounts map[string]bool // accounts with a hash in the reserved part, waiting or running
}

// NewPool returns a Pool whose hashes use at most budgetKiB KiB at once
// (DefaultMemoryBudget if zero or negative), half of it kept for accounts
// that vouch for their logins (see Pool).
func NewPool(budgetKiB int64) *Pool {
	if budgetKiB <= 0 {
		budgetKiB = DefaultMemoryBudget
	}
	shared := max(budgetKiB/2, 1)
	return &Pool{
		Wait:         DefaultHashWait,
		budget:       budgetKiB,
		sharedBudget: shared,
		all:          semaphore.NewWeighted(budgetKiB),
		shared:       semaphore.NewWeighted(shared),
		accounts:     make(map[string]bool),
	}
}

// Budget returns the pool's memory budget in KiB.
func (p *Pool) Budget() int64 { return p.budget }

// SharedBudget returns how much of the budget, in KiB, the hashes that no
// account vouches for may hold together.
func (p *Pool) SharedBudget() int64 { return p.sharedBudget }

// Waiting returns how many hashes are waiting for memory.
func (p *Pool) Waiting() int64 { return p.waiting.Load() }

// A claim says which part of a Pool a hash may use.
type claim struct {
	// shared limits the hash to the shared part.
	shared bool
	// account, if set, is the account the login is for: it gets the
	// whole pool for one hash at a time, any other goes to the shared
	// part.
	account string
}

// Claims of the Hasher's callers.
var (
	claimShared = claim{shared: true} // nobody vouches: unknown user, recent failures
	claimAny    = claim{}             // setting a password, a Hasher's own callers
)

// run runs f holding memoryKiB of the pool's budget, in the part c
// allows. A hash that needs more than the whole budget is refused with
// ErrHashCost before f runs: argon2id allocates its memory parameter
// whatever the pool holds, so running it would break the bound the pool
// exists for.
func (p *Pool) run(ctx context.Context, memoryKiB uint32, c claim, f func()) error {
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
	if c.account != "" {
		p.mu.Lock()
		if p.accounts[c.account] {
			c.shared = true // the account has its hash in the pool already
		} else {
			p.accounts[c.account] = true
			defer func() {
				p.mu.Lock()
				delete(p.accounts, c.account)
				p.mu.Unlock()
			}()
		}
		p.mu.Unlock()
	}
	p.waiting.Add(1)
	if c.shared {
		// Hashes that hold or wait for the shared part never hold more
		// than SharedBudget of the whole together, so the rest of it stays
		// free for the others, and none of them waits behind these.
		ws := min(w, p.sharedBudget)
		if err := p.shared.Acquire(ctx, ws); err != nil {
			p.waiting.Add(-1)
			return ErrBusy
		}
		defer p.shared.Release(ws)
	}
	err := p.all.Acquire(ctx, w)
	p.waiting.Add(-1)
	if err != nil {
		return ErrBusy
	}
	defer p.all.Release(w)
	n := p.inUse.Add(w)
	defer p.inUse.Add(-w)
	if p.Started != nil {
		p.Started(ctx, n)
	}
	f()
	return nil
}
