package identity_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/identity"
)

// TestLogin_poolBounded runs 64 failed logins at once, half for unknown
// usernames and half with a wrong password, through a pool with room for
// two hashes: the hashes never hold more than the pool's memory budget,
// and every login still gets its answer.
func TestLogin_poolBounded(t *testing.T) {
	f := newFixture(t)
	const memory = 4 * 1024 // KiB
	pool := identity.NewPool(2 * memory)
	pool.Wait = -1 // wait as long as it takes: this test is not about timeouts
	var peak, started atomic.Int64
	pool.Started = func(_ context.Context, inUse int64) {
		started.Add(1)
		for {
			p := peak.Load()
			if inUse <= p || peak.CompareAndSwap(p, inUse) {
				return
			}
		}
	}
	f.auth.Hasher = &identity.Hasher{Params: identity.Params{Memory: memory, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, Pool: pool}
	f.auth.LockAfter = 1000

	const logins = 64
	var wg sync.WaitGroup
	errs := make(chan error, logins)
	for i := range logins {
		wg.Go(func() {
			user := "jdoe"
			if i%2 == 0 {
				user = fmt.Sprintf("nobody-%d", i)
			}
			_, err := f.auth.Login(t.Context(), user, "wrong-password-1234", "000000")
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, identity.ErrInvalidCredentials) {
			t.Errorf("Login = %v, want ErrInvalidCredentials", err)
		}
	}
	if got := started.Load(); got != logins {
		t.Errorf("%d hashes ran, want %d (one per login)", got, logins)
	}
	if got := peak.Load(); got > pool.Budget() {
		t.Errorf("hashes held %d KiB at once, over the pool's budget of %d KiB (%d hashes)", got, pool.Budget(), got/memory)
	}
}

// TestLogin_poolBusy checks that a login that cannot get memory in time
// gets ErrBusy (503-like), is not counted as a failure, and that waiting
// respects the caller's context.
func TestLogin_poolBusy(t *testing.T) {
	f := newFixture(t)
	pool := identity.NewPool(64)
	release := make(chan struct{})
	holding := make(chan struct{})
	var first sync.Once
	pool.Started = func(context.Context, int64) {
		first.Do(func() {
			close(holding)
			<-release
		})
	}
	f.auth.Hasher = &identity.Hasher{Params: testHasher().Params, Pool: pool}
	done := make(chan error, 1)
	go func() {
		_, err := f.auth.Login(context.Background(), "jdoe", testPassword, f.code(t))
		done <- err
	}()
	<-holding // the pool is full until release

	pool.Wait = time.Nanosecond
	if _, err := f.auth.Login(t.Context(), "jdoe", "wrong-password-1234", "000000"); !errors.Is(err, identity.ErrBusy) || phivault.ErrorCode(err) != phivault.EUNAVAILABLE {
		t.Errorf("Login with a full pool = %v, want ErrBusy (unavailable)", err)
	}
	pool.Wait = -1
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := f.auth.Login(ctx, "nobody", "wrong-password-1234", "000000"); !errors.Is(err, identity.ErrBusy) {
		t.Errorf("Login with an ended context = %v, want ErrBusy", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("the login holding the pool = %v, want success", err)
	}
	acc, err := f.store.AccountByID(t.Context(), f.acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if acc.FailedLogins != 0 {
		t.Errorf("FailedLogins = %d, want 0: busy answers are not failures", acc.FailedLogins)
	}
}

// TestVerify_costCapped checks that a stored hash asking for more memory
// than the pool's whole budget, or for too many passes, is refused before
// argon2id runs, and that Login reports it as an error naming the account
// and the parameters, never the hash.
func TestVerify_costCapped(t *testing.T) {
	const budget = 64 // KiB
	pool := identity.NewPool(budget)
	var started atomic.Int64
	pool.Started = func(context.Context, int64) { started.Add(1) }
	h := &identity.Hasher{Params: identity.Params{Memory: budget, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, Pool: pool}
	big := &identity.Hasher{Params: identity.Params{Memory: 16 * budget, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}}
	enc, err := big.Hash(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	slow := &identity.Hasher{Params: identity.Params{Memory: budget, Time: identity.MaxTime + 1, Threads: 1, SaltLen: 16, KeyLen: 32}}
	encSlow, err := slow.Hash(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	for _, stored := range []string{enc, encSlow} {
		if ok, _, err := h.Verify(stored, testPassword); ok || !errors.Is(err, identity.ErrHashCost) {
			t.Errorf("Verify(%.30s...) = %v, %v; want ErrHashCost", stored, ok, err)
		}
	}
	if _, err := h.Hash(testPassword); err != nil {
		t.Errorf("Hash within the budget = %v", err)
	}
	if n := started.Load(); n != 1 {
		t.Errorf("%d hashes ran, want 1 (the Hash): over-cost hashes must not run", n)
	}
	big.Pool = pool
	if _, err := big.Hash(testPassword); !errors.Is(err, identity.ErrHashCost) {
		t.Errorf("Hash with memory over the pool's budget = %v, want ErrHashCost", err)
	}

	f := newFixture(t)
	f.auth.Hasher = h
	acc, err := f.store.AccountByID(t.Context(), f.acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	acc.PasswordHash, acc.Version = enc, acc.Version+1
	if err := f.store.UpdateAccount(t.Context(), acc); err != nil {
		t.Fatal(err)
	}
	_, err = f.auth.Login(t.Context(), "jdoe", testPassword, f.code(t))
	if !errors.Is(err, identity.ErrHashCost) || errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("Login with an over-cost stored hash = %v, want ErrHashCost", err)
	}
	if msg := err.Error(); !strings.Contains(msg, f.acc.ID) || strings.Contains(msg, "$argon2id") || strings.Contains(msg, enc[len(enc)-20:]) {
		t.Errorf("Login error %q: want the account id and no part of the hash", msg)
	}
}

// floodKey marks the context of a login that belongs to a flood.
type floodKey struct{}

// TestLogin_poolFair floods the pool with failed logins whose hashes hold
// their memory until released: unknown usernames, an account that failed
// recently, and repeated attempts at an account that had not. Then a
// person signs in to another account: the hash gets memory at once,
// because the flood holds only the shared half of the pool and one hash
// for the account it names.
func TestLogin_poolFair(t *testing.T) {
	f := newFixture(t)
	memory := int64(testHasher().Params.Memory)
	pool := identity.NewPool(4 * memory)
	pool.Wait = -1 // the flood waits for as long as it takes
	f.auth.Hasher = &identity.Hasher{Params: testHasher().Params, Pool: pool}
	f.auth.LockAfter = 1000
	hash, err := f.auth.Hasher.Hash(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []*phivault.Account{
		{ID: "acc-victim", Username: "victim", FailedLogins: 1, LastFailure: f.clock.t.Add(-time.Minute)},
		{ID: "acc-named", Username: "named"},
	} {
		a.Status, a.PasswordHash, a.TOTPSecret, a.Created = phivault.AccountActive, hash, testSecret, f.clock.t
		if err := f.store.CreateAccount(t.Context(), a); err != nil {
			t.Fatal(err)
		}
	}

	release := make(chan struct{})
	held := make(chan struct{}, 64)
	var started, holding atomic.Int64
	pool.Started = func(ctx context.Context, inUse int64) {
		started.Add(1)
		if inUse > pool.Budget() {
			t.Errorf("hashes hold %d KiB, over the budget of %d", inUse, pool.Budget())
		}
		if ctx.Value(floodKey{}) != nil {
			holding.Add(1)
			held <- struct{}{}
			<-release
			holding.Add(-1)
		}
	}

	code := f.code(t) // the clock stands still from here on
	flood := context.WithValue(t.Context(), floodKey{}, true)
	const perKind = 8
	var wg sync.WaitGroup
	errs := make(chan error, 3*perKind)
	for i := range 3 * perKind {
		user := []string{"victim", "named", fmt.Sprintf("nobody-%d", i)}[i%3]
		wg.Go(func() {
			_, err := f.auth.Login(flood, user, "wrong-password-1234", "000000")
			errs <- err
		})
	}
	// The shared half holds two hashes; the named account holds one more
	// in the reserved half.
	maxHeld := pool.SharedBudget()/memory + 1
	for range maxHeld {
		<-held
	}
	// Every login of the flood is in the pool before the person's.
	for holding.Load()+pool.Waiting() < 3*perKind {
		time.Sleep(time.Millisecond)
	}

	// The deadline only bounds how long a pool without a reserve makes
	// this login wait before ErrBusy: with one, it gets memory at once.
	ctx, cancel := context.WithTimeout(t.Context(), identity.DefaultHashWait)
	defer cancel()
	acc, err := f.auth.Login(ctx, "jdoe", testPassword, code)
	if err != nil {
		t.Errorf("Login during the flood = %v, want success", err)
	} else if acc.ID != f.acc.ID {
		t.Errorf("Login during the flood = account %s, want %s", acc.ID, f.acc.ID)
	}
	if got := holding.Load(); got != maxHeld {
		t.Errorf("the flood held %d hashes at once, want %d (the shared half and one for the named account)", got, maxHeld)
	}

	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, identity.ErrInvalidCredentials) {
			t.Errorf("flood Login = %v, want ErrInvalidCredentials", err)
		}
	}
	if got, want := started.Load(), int64(3*perKind+1); got != want {
		t.Errorf("%d hashes ran, want %d (one per login)", got, want)
	}
}
