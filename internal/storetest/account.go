package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/phivault/phivault"
)

// Conformance suites for phivault.AccountStore and phivault.ClientStore.
//
// Stores may return an empty slice or nil for a list or byte field that was
// stored empty or nil (sqlite returns Roles as [] and Clearances as nil), so
// the suites compare with cmpopts.EquateEmpty; times are compared with
// time.Time.Equal after truncation to the microsecond, the precision both
// stores keep.

// concurrentWriters and concurrentIncrements size the lost-update tests.
const (
	concurrentWriters    = 16
	concurrentIncrements = 4
)

// identityCmp compares accounts and clients as a store promises to keep them.
var identityCmp = cmp.Options{cmpopts.EquateEmpty()}

// Account returns an account with every field set, distinct per n, with
// times at microsecond precision in a non-UTC zone.
func Account(n int) *phivault.Account {
	zone := time.FixedZone("UTC+2", 2*60*60)
	t := t0.In(zone).Add(time.Duration(n) * time.Hour)
	return &phivault.Account{
		ID:                 fmt.Sprintf("acc-%03d", n),
		Username:           fmt.Sprintf("user%d", n),
		Kind:               phivault.PrincipalStaff,
		Roles:              []string{"nurse", "physician"},
		Department:         "cardiology",
		Organization:       "org-1",
		PractitionerID:     fmt.Sprintf("prac-%d", n),
		PatientID:          "",
		Clearances:         []string{"R", "PSY"},
		TrainingValidUntil: t.AddDate(1, 0, 0),
		Status:             phivault.AccountActive,
		ExternalID:         fmt.Sprintf("ext-%d", n),
		FederatedSubject:   fmt.Sprintf("https://idp.example sub-%d", n),
		PasswordHash:       "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		TOTPSecret:         []byte(fmt.Sprintf("totp-secret-%08d", n)),
		TOTPLastStep:       int64(1000 + n),
		WebAuthn:           []byte(fmt.Sprintf(`[{"id":"cred-%d"}]`, n)),
		FailedLogins:       n % 3,
		LastFailure:        t.Add(-time.Minute),
		LockedUntil:        t.Add(time.Minute),
		Created:            t,
	}
}

// RunAccountStore runs the AccountStore conformance suite. open is called
// once per subtest and must return a new, empty store that is closed when
// the test ends.
func RunAccountStore(t *testing.T, open func(t *testing.T) phivault.AccountStore) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s phivault.AccountStore)
	}{
		{"CreateAccount/OK", testCreateAccountOK},
		{"CreateAccount/ErrInvalid", testCreateAccountErrInvalid},
		{"CreateAccount/ErrConflict", testCreateAccountErrConflict},
		{"AccountByID/ErrNotFound", testAccountErrNotFound},
		{"UpdateAccount/OK", testUpdateAccountOK},
		{"UpdateAccount/ErrConflict", testUpdateAccountErrConflict},
		{"UpdateAccount/ErrNotFound", testUpdateAccountErrNotFound},
		{"Accounts/Order", testAccountsOrder},
		{"AccountSummaries/NoCredentials", testAccountSummaries},
		{"Account/EmptyFields", testAccountEmptyFields},
		{"Account/Microseconds", testAccountMicroseconds},
		{"UpdateAccount/Concurrent", testUpdateAccountConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// MustCreateAccount creates a and fails the test on error.
func MustCreateAccount(tb testing.TB, s phivault.AccountStore, a *phivault.Account) {
	tb.Helper()
	if err := s.CreateAccount(context.Background(), a); err != nil {
		tb.Fatalf("CreateAccount(%s) = %v", a.ID, err)
	}
}

// wantAccount is what a store should return for a stored a.
func wantAccount(a *phivault.Account) *phivault.Account {
	w := *a
	for _, t := range []*time.Time{&w.TrainingValidUntil, &w.LastFailure, &w.LockedUntil, &w.Created} {
		*t = t.Truncate(time.Microsecond)
	}
	return &w
}

// checkAccount fails the test unless the stored account id equals want.
func checkAccount(tb testing.TB, s phivault.AccountStore, id string, want *phivault.Account) {
	tb.Helper()
	got, err := s.AccountByID(context.Background(), id)
	if err != nil {
		tb.Fatalf("AccountByID(%q) = %v", id, err)
	}
	if d := cmp.Diff(wantAccount(want), got, identityCmp); d != "" {
		tb.Errorf("AccountByID(%q) mismatch (-want +got):\n%s", id, d)
	}
}

func testCreateAccountOK(t *testing.T, s phivault.AccountStore) {
	ctx := context.Background()
	a := Account(1)
	a.Version = 7 // ignored: a new account is version 1
	MustCreateAccount(t, s, a)
	if a.Version != 1 {
		t.Errorf("Version after CreateAccount = %d, want 1", a.Version)
	}
	checkAccount(t, s, a.ID, a)
	got, err := s.AccountByUsername(ctx, a.Username)
	if err != nil {
		t.Fatalf("AccountByUsername(%q) = %v", a.Username, err)
	}
	if d := cmp.Diff(wantAccount(a), got, identityCmp); d != "" {
		t.Errorf("AccountByUsername mismatch (-want +got):\n%s", d)
	}
	got, err = s.AccountByFederatedSubject(ctx, a.FederatedSubject)
	if err != nil {
		t.Fatalf("AccountByFederatedSubject(%q) = %v", a.FederatedSubject, err)
	}
	if d := cmp.Diff(wantAccount(a), got, identityCmp); d != "" {
		t.Errorf("AccountByFederatedSubject mismatch (-want +got):\n%s", d)
	}
	// Returned accounts are copies: changing one changes nothing stored.
	got.Roles[0] = "changed"
	got.TOTPSecret[0] ^= 1
	checkAccount(t, s, a.ID, a)
}

func testCreateAccountErrInvalid(t *testing.T, s phivault.AccountStore) {
	ctx := context.Background()
	for _, a := range []*phivault.Account{{Username: "noid"}, {ID: "acc-noname"}} {
		if err := s.CreateAccount(ctx, a); phivault.ErrorCode(err) != phivault.EINVALID {
			t.Errorf("CreateAccount(id %q, username %q) = %v, want EINVALID", a.ID, a.Username, err)
		}
	}
	if list, err := s.Accounts(ctx); err != nil || len(list) != 0 {
		t.Errorf("Accounts() = %d accounts, %v; want none", len(list), err)
	}
}

func testCreateAccountErrConflict(t *testing.T, s phivault.AccountStore) {
	ctx := context.Background()
	a := Account(1)
	MustCreateAccount(t, s, a)
	// Several accounts without a federated login may coexist.
	for n := 2; n <= 3; n++ {
		b := Account(n)
		b.FederatedSubject = ""
		MustCreateAccount(t, s, b)
	}
	for _, tt := range []struct {
		name string
		give *phivault.Account
	}{
		{"id", &phivault.Account{ID: a.ID, Username: "fresh-1", FederatedSubject: "https://idp.example fresh-1"}},
		{"username", &phivault.Account{ID: "acc-fresh-2", Username: a.Username, FederatedSubject: "https://idp.example fresh-2"}},
		{"federated subject", &phivault.Account{ID: "acc-fresh-3", Username: "fresh-3", FederatedSubject: a.FederatedSubject}},
	} {
		if err := s.CreateAccount(ctx, tt.give); phivault.ErrorCode(err) != phivault.ECONFLICT {
			t.Errorf("CreateAccount(taken %s) = %v, want ECONFLICT", tt.name, err)
		}
		if tt.give.Version != 0 {
			t.Errorf("CreateAccount(taken %s) set Version %d, want it untouched", tt.name, tt.give.Version)
		}
	}
	// Nothing of the refused accounts was written.
	list, err := s.Accounts(ctx)
	if err != nil {
		t.Fatalf("Accounts() = %v", err)
	}
	if len(list) != 3 {
		t.Errorf("Accounts() = %d accounts, want 3", len(list))
	}
	for _, name := range []string{"fresh-1", "fresh-3"} {
		if _, err := s.AccountByUsername(ctx, name); !errors.Is(err, phivault.ErrNotFound) {
			t.Errorf("AccountByUsername(%q) = %v, want ErrNotFound", name, err)
		}
	}
	checkAccount(t, s, a.ID, a)
}

func testAccountErrNotFound(t *testing.T, s phivault.AccountStore) {
	ctx := context.Background()
	a := Account(1)
	a.FederatedSubject = ""
	MustCreateAccount(t, s, a)
	if _, err := s.AccountByID(ctx, "nope"); !errors.Is(err, phivault.ErrNotFound) {
		t.Errorf("AccountByID(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.AccountByUsername(ctx, "nope"); !errors.Is(err, phivault.ErrNotFound) {
		t.Errorf("AccountByUsername(missing) = %v, want ErrNotFound", err)
	}
	// "" is no federated login, even though an account has "" stored.
	for _, sub := range []string{"", "https://idp.example nope"} {
		if _, err := s.AccountByFederatedSubject(ctx, sub); !errors.Is(err, phivault.ErrNotFound) {
			t.Errorf("AccountByFederatedSubject(%q) = %v, want ErrNotFound", sub, err)
		}
	}
}

func testUpdateAccountOK(t *testing.T, s phivault.AccountStore) {
	ctx := context.Background()
	a := Account(1)
	MustCreateAccount(t, s, a)
	b := Account(2) // every field different
	b.ID, b.Version = a.ID, 2
	b.Kind, b.PatientID, b.Status = phivault.PrincipalPatient, "pat-9", phivault.AccountSuspended
	if err := s.UpdateAccount(ctx, b); err != nil {
		t.Fatalf("UpdateAccount() = %v", err)
	}
	checkAccount(t, s, a.ID, b)
	if _, err := s.AccountByUsername(ctx, a.Username); !errors.Is(err, phivault.ErrNotFound) {
		t.Errorf("AccountByUsername(old name) = %v, want ErrNotFound", err)
	}
	if _, err := s.AccountByFederatedSubject(ctx, a.FederatedSubject); !errors.Is(err, phivault.ErrNotFound) {
		t.Errorf("AccountByFederatedSubject(old subject) = %v, want ErrNotFound", err)
	}
	// The old username is free again.
	c := Account(3)
	c.Username = a.Username
	MustCreateAccount(t, s, c)
}

func testUpdateAccountErrConflict(t *testing.T, s phivault.AccountStore) {
	ctx := context.Background()
	a, other := Account(1), Account(2)
	MustCreateAccount(t, s, a)
	MustCreateAccount(t, s, other)
	next := *a
	next.Version, next.Department = 2, "oncology"
	if err := s.UpdateAccount(ctx, &next); err != nil {
		t.Fatalf("UpdateAccount() = %v", err)
	}
	for _, tt := range []struct {
		name string
		edit func(b *phivault.Account)
	}{
		{"stale version", func(b *phivault.Account) { b.Version = 2 }},
		{"same version", func(b *phivault.Account) { *b = next; b.Department = "x" }},
		{"skipped version", func(b *phivault.Account) { b.Version = 4 }},
		{"taken username", func(b *phivault.Account) { b.Version = 3; b.Username = other.Username }},
		{"taken federated subject", func(b *phivault.Account) { b.Version = 3; b.FederatedSubject = other.FederatedSubject }},
	} {
		b := *a
		b.Status = phivault.AccountDeprovisioned
		tt.edit(&b)
		if err := s.UpdateAccount(ctx, &b); phivault.ErrorCode(err) != phivault.ECONFLICT {
			t.Errorf("UpdateAccount(%s) = %v, want ECONFLICT", tt.name, err)
		}
	}
	checkAccount(t, s, a.ID, &next)
	checkAccount(t, s, other.ID, other)
}

func testUpdateAccountErrNotFound(t *testing.T, s phivault.AccountStore) {
	ctx := context.Background()
	a := Account(1)
	MustCreateAccount(t, s, a)
	b := Account(2)
	b.Version = 2
	if err := s.UpdateAccount(ctx, b); !errors.Is(err, phivault.ErrNotFound) {
		t.Errorf("UpdateAccount(missing) = %v, want ErrNotFound", err)
	}
	if list, err := s.Accounts(ctx); err != nil || len(list) != 1 {
		t.Errorf("Accounts() = %d accounts, %v; want 1", len(list), err)
	}
}

func testAccountsOrder(t *testing.T, s phivault.AccountStore) {
	ctx := context.Background()
	if list, err := s.Accounts(ctx); err != nil || len(list) != 0 {
		t.Fatalf("Accounts() on an empty store = %d accounts, %v; want none", len(list), err)
	}
	var want []*phivault.Account
	for _, n := range []int{3, 10, 1, 7, 2} {
		MustCreateAccount(t, s, Account(n))
	}
	for _, n := range []int{1, 2, 3, 7, 10} {
		a := Account(n)
		a.Version = 1
		want = append(want, wantAccount(a))
	}
	// Ids compare by bytes: "B" sorts before "a".
	for _, id := range []string{"acc-B", "acc-a"} {
		a := &phivault.Account{ID: id, Username: id, Status: phivault.AccountActive}
		MustCreateAccount(t, s, a)
		want = append(want, wantAccount(a))
	}
	got, err := s.Accounts(ctx)
	if err != nil {
		t.Fatalf("Accounts() = %v", err)
	}
	if d := cmp.Diff(want, got, identityCmp); d != "" {
		t.Errorf("Accounts() mismatch (-want +got):\n%s", d)
	}
}

// testAccountSummaries checks that a store lists accounts without their
// credentials, saying only which are set.
func testAccountSummaries(t *testing.T, s phivault.AccountStore) {
	l, ok := s.(phivault.AccountLister)
	if !ok {
		t.Fatal("the store is not a phivault.AccountLister: listings would read every credential")
	}
	withBoth, without, totpOnly := Account(1), Account(2), Account(3)
	without.TOTPSecret, without.WebAuthn = nil, nil
	totpOnly.WebAuthn = nil
	var want []phivault.AccountSummary
	for _, a := range []*phivault.Account{withBoth, without, totpOnly} {
		MustCreateAccount(t, s, a)
		w := wantAccount(a)
		want = append(want, phivault.SummarizeAccount(w))
	}
	got, err := l.AccountSummaries(context.Background())
	if err != nil {
		t.Fatalf("AccountSummaries() = %v", err)
	}
	if d := cmp.Diff(want, got, identityCmp); d != "" {
		t.Errorf("AccountSummaries() mismatch (-want +got):\n%s", d)
	}
}

func testAccountEmptyFields(t *testing.T, s phivault.AccountStore) {
	ctx := context.Background()
	nils := &phivault.Account{ID: "acc-nil", Username: "nil"}
	empties := &phivault.Account{ID: "acc-empty", Username: "empty", Roles: []string{}, Clearances: []string{},
		TOTPSecret: []byte{}, WebAuthn: []byte{}}
	for _, a := range []*phivault.Account{nils, empties} {
		MustCreateAccount(t, s, a)
		got, err := s.AccountByID(ctx, a.ID)
		if err != nil {
			t.Fatalf("AccountByID(%q) = %v", a.ID, err)
		}
		if len(got.Roles) != 0 || len(got.Clearances) != 0 || len(got.TOTPSecret) != 0 || len(got.WebAuthn) != 0 {
			t.Errorf("AccountByID(%q) = %+v, want empty lists and credentials", a.ID, got)
		}
		if !got.TrainingValidUntil.IsZero() || !got.LastFailure.IsZero() || !got.LockedUntil.IsZero() || !got.Created.IsZero() {
			t.Errorf("AccountByID(%q) times = %v %v %v %v, want zero", a.ID, got.TrainingValidUntil, got.LastFailure, got.LockedUntil, got.Created)
		}
		checkAccount(t, s, a.ID, a)
	}
	// Clearing fields by update stores them empty too.
	full := Account(1)
	MustCreateAccount(t, s, full)
	cleared := &phivault.Account{ID: full.ID, Username: full.Username, Version: 2}
	if err := s.UpdateAccount(ctx, cleared); err != nil {
		t.Fatalf("UpdateAccount(cleared) = %v", err)
	}
	checkAccount(t, s, full.ID, cleared)
}

func testAccountMicroseconds(t *testing.T, s phivault.AccountStore) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("UTC-5", -5*60*60))
	a := &phivault.Account{ID: "acc-time", Username: "time", TrainingValidUntil: ts, LastFailure: ts.Add(time.Nanosecond),
		LockedUntil: ts.Add(999), Created: time.Date(1969, 7, 20, 20, 17, 40, 1000, time.UTC)}
	MustCreateAccount(t, s, a)
	got, err := s.AccountByID(context.Background(), a.ID)
	if err != nil {
		t.Fatalf("AccountByID() = %v", err)
	}
	want := ts.Truncate(time.Microsecond)
	for name, tt := range map[string]struct{ got, want time.Time }{
		"TrainingValidUntil": {got.TrainingValidUntil, want},
		"LastFailure":        {got.LastFailure, want},
		"LockedUntil":        {got.LockedUntil, ts.Add(999).Truncate(time.Microsecond)},
		"Created":            {got.Created, a.Created},
	} {
		if !tt.got.Equal(tt.want) {
			t.Errorf("%s = %v, want %v", name, tt.got, tt.want)
		}
	}
}

// testUpdateAccountConcurrent has writers increment FailedLogins by
// read-modify-write, retrying on ECONFLICT: no increment may be lost.
func testUpdateAccountConcurrent(t *testing.T, s phivault.AccountStore) {
	ctx := context.Background()
	a := Account(1)
	a.FailedLogins = 0
	MustCreateAccount(t, s, a)
	var wg sync.WaitGroup
	errs := make(chan error, concurrentWriters)
	for range concurrentWriters {
		wg.Go(func() {
			for range concurrentIncrements {
				if err := retryOnConflict(func() error {
					b, err := s.AccountByID(ctx, a.ID)
					if err != nil {
						return err
					}
					b.FailedLogins++
					b.Version++
					return s.UpdateAccount(ctx, b)
				}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent UpdateAccount() = %v", err)
	}
	got, err := s.AccountByID(ctx, a.ID)
	if err != nil {
		t.Fatalf("AccountByID() = %v", err)
	}
	const n = concurrentWriters * concurrentIncrements
	if got.FailedLogins != n || got.Version != 1+n {
		t.Errorf("after %d increments: FailedLogins = %d, Version = %d; want %d, %d", n, got.FailedLogins, got.Version, n, 1+n)
	}
	want := *a
	want.FailedLogins, want.Version = n, 1+n
	checkAccount(t, s, a.ID, &want)
}

// retryOnConflict calls fn until it returns something other than ECONFLICT.
func retryOnConflict(fn func() error) error {
	for i := 0; ; i++ {
		err := fn()
		if phivault.ErrorCode(err) != phivault.ECONFLICT {
			return err
		}
		if i == 10_000 {
			return fmt.Errorf("still conflicting after %d tries: %w", i, err)
		}
	}
}

// Client returns a client with every field set, distinct per n.
func Client(n int) *phivault.Client {
	return &phivault.Client{
		ID:           fmt.Sprintf("client-%03d", n),
		Name:         fmt.Sprintf("App %d", n),
		Kind:         phivault.ClientPublic,
		RedirectURIs: []string{fmt.Sprintf("https://app%d.example/callback", n), "http://127.0.0.1/cb"},
		JWKS:         []byte(fmt.Sprintf(`{"keys":[{"kid":"k%d"}]}`, n)),
		Scopes:       []string{"openid", "patient/*.rs"},
		Status:       phivault.AccountActive,
		Created:      t0.In(time.FixedZone("UTC-3", -3*60*60)).Add(time.Duration(n) * time.Hour),
	}
}

// RunClientStore runs the ClientStore conformance suite. open is called once
// per subtest and must return a new, empty store that is closed when the
// test ends.
func RunClientStore(t *testing.T, open func(t *testing.T) phivault.ClientStore) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s phivault.ClientStore)
	}{
		{"CreateClient/OK", testCreateClientOK},
		{"CreateClient/ErrInvalid", testCreateClientErrInvalid},
		{"CreateClient/ErrConflict", testCreateClientErrConflict},
		{"UpdateClient/OK", testUpdateClientOK},
		{"UpdateClient/ErrConflict", testUpdateClientErrConflict},
		{"UpdateClient/ErrNotFound", testUpdateClientErrNotFound},
		{"Clients/Order", testClientsOrder},
		{"Client/EmptyFields", testClientEmptyFields},
		{"UpdateClient/Concurrent", testUpdateClientConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// MustCreateClient creates c and fails the test on error.
func MustCreateClient(tb testing.TB, s phivault.ClientStore, c *phivault.Client) {
	tb.Helper()
	if err := s.CreateClient(context.Background(), c); err != nil {
		tb.Fatalf("CreateClient(%s) = %v", c.ID, err)
	}
}

func wantClient(c *phivault.Client) *phivault.Client {
	w := *c
	w.Created = w.Created.Truncate(time.Microsecond)
	return &w
}

// checkClient fails the test unless the stored client id equals want.
func checkClient(tb testing.TB, s phivault.ClientStore, id string, want *phivault.Client) {
	tb.Helper()
	got, err := s.ClientByID(context.Background(), id)
	if err != nil {
		tb.Fatalf("ClientByID(%q) = %v", id, err)
	}
	if d := cmp.Diff(wantClient(want), got, identityCmp); d != "" {
		tb.Errorf("ClientByID(%q) mismatch (-want +got):\n%s", id, d)
	}
}

func testCreateClientOK(t *testing.T, s phivault.ClientStore) {
	c := Client(1)
	c.Version = 9 // ignored: a new client is version 1
	MustCreateClient(t, s, c)
	if c.Version != 1 {
		t.Errorf("Version after CreateClient = %d, want 1", c.Version)
	}
	checkClient(t, s, c.ID, c)
	b := Client(2)
	b.Kind, b.RedirectURIs = phivault.ClientBackend, nil
	MustCreateClient(t, s, b)
	checkClient(t, s, b.ID, b)
	if _, err := s.ClientByID(context.Background(), "nope"); !errors.Is(err, phivault.ErrNotFound) {
		t.Errorf("ClientByID(missing) = %v, want ErrNotFound", err)
	}
}

func testCreateClientErrInvalid(t *testing.T, s phivault.ClientStore) {
	ctx := context.Background()
	if err := s.CreateClient(ctx, &phivault.Client{Name: "no id"}); phivault.ErrorCode(err) != phivault.EINVALID {
		t.Errorf("CreateClient(no id) = %v, want EINVALID", err)
	}
	if list, err := s.Clients(ctx); err != nil || len(list) != 0 {
		t.Errorf("Clients() = %d clients, %v; want none", len(list), err)
	}
}

func testCreateClientErrConflict(t *testing.T, s phivault.ClientStore) {
	c := Client(1)
	MustCreateClient(t, s, c)
	dup := Client(2)
	dup.ID = c.ID
	if err := s.CreateClient(context.Background(), dup); phivault.ErrorCode(err) != phivault.ECONFLICT {
		t.Errorf("CreateClient(taken id) = %v, want ECONFLICT", err)
	}
	if dup.Version != 0 {
		t.Errorf("CreateClient(taken id) set Version %d, want it untouched", dup.Version)
	}
	checkClient(t, s, c.ID, c)
}

func testUpdateClientOK(t *testing.T, s phivault.ClientStore) {
	c := Client(1)
	MustCreateClient(t, s, c)
	b := Client(2) // every field different
	b.ID, b.Version = c.ID, 2
	b.Kind, b.Status = phivault.ClientBackend, phivault.AccountSuspended
	if err := s.UpdateClient(context.Background(), b); err != nil {
		t.Fatalf("UpdateClient() = %v", err)
	}
	checkClient(t, s, c.ID, b)
}

func testUpdateClientErrConflict(t *testing.T, s phivault.ClientStore) {
	ctx := context.Background()
	c := Client(1)
	MustCreateClient(t, s, c)
	next := *c
	next.Version, next.Name = 2, "Renamed"
	if err := s.UpdateClient(ctx, &next); err != nil {
		t.Fatalf("UpdateClient() = %v", err)
	}
	for _, v := range []int64{1, 2, 4} {
		b := *c
		b.Version, b.Status = v, phivault.AccountSuspended
		if err := s.UpdateClient(ctx, &b); phivault.ErrorCode(err) != phivault.ECONFLICT {
			t.Errorf("UpdateClient(version %d over 2) = %v, want ECONFLICT", v, err)
		}
	}
	checkClient(t, s, c.ID, &next)
}

func testUpdateClientErrNotFound(t *testing.T, s phivault.ClientStore) {
	ctx := context.Background()
	c := Client(1)
	c.Version = 2
	if err := s.UpdateClient(ctx, c); !errors.Is(err, phivault.ErrNotFound) {
		t.Errorf("UpdateClient(missing) = %v, want ErrNotFound", err)
	}
	if list, err := s.Clients(ctx); err != nil || len(list) != 0 {
		t.Errorf("Clients() = %d clients, %v; want none", len(list), err)
	}
}

func testClientsOrder(t *testing.T, s phivault.ClientStore) {
	ctx := context.Background()
	if list, err := s.Clients(ctx); err != nil || len(list) != 0 {
		t.Fatalf("Clients() on an empty store = %d clients, %v; want none", len(list), err)
	}
	for _, n := range []int{5, 1, 12, 3} {
		MustCreateClient(t, s, Client(n))
	}
	var want []*phivault.Client
	for _, n := range []int{1, 3, 5, 12} {
		c := Client(n)
		c.Version = 1
		want = append(want, wantClient(c))
	}
	for _, id := range []string{"client-B", "client-a"} {
		c := &phivault.Client{ID: id}
		MustCreateClient(t, s, c)
		want = append(want, wantClient(c))
	}
	got, err := s.Clients(ctx)
	if err != nil {
		t.Fatalf("Clients() = %v", err)
	}
	if d := cmp.Diff(want, got, identityCmp); d != "" {
		t.Errorf("Clients() mismatch (-want +got):\n%s", d)
	}
}

func testClientEmptyFields(t *testing.T, s phivault.ClientStore) {
	nils := &phivault.Client{ID: "client-nil"}
	empties := &phivault.Client{ID: "client-empty", RedirectURIs: []string{}, JWKS: []byte{}, Scopes: []string{}}
	for _, c := range []*phivault.Client{nils, empties} {
		MustCreateClient(t, s, c)
		got, err := s.ClientByID(context.Background(), c.ID)
		if err != nil {
			t.Fatalf("ClientByID(%q) = %v", c.ID, err)
		}
		if len(got.RedirectURIs) != 0 || len(got.JWKS) != 0 || len(got.Scopes) != 0 || !got.Created.IsZero() {
			t.Errorf("ClientByID(%q) = %+v, want empty fields", c.ID, got)
		}
	}
}

// testUpdateClientConcurrent has writers each add scopes by
// read-modify-write, retrying on ECONFLICT: no scope may be lost.
func testUpdateClientConcurrent(t *testing.T, s phivault.ClientStore) {
	ctx := context.Background()
	c := Client(1)
	c.Scopes = nil
	MustCreateClient(t, s, c)
	var wg sync.WaitGroup
	errs := make(chan error, concurrentWriters)
	for w := range concurrentWriters {
		wg.Go(func() {
			for i := range concurrentIncrements {
				if err := retryOnConflict(func() error {
					b, err := s.ClientByID(ctx, c.ID)
					if err != nil {
						return err
					}
					b.Scopes = append(b.Scopes, fmt.Sprintf("w%d/%d", w, i))
					b.Version++
					return s.UpdateClient(ctx, b)
				}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent UpdateClient() = %v", err)
	}
	got, err := s.ClientByID(ctx, c.ID)
	if err != nil {
		t.Fatalf("ClientByID() = %v", err)
	}
	const n = concurrentWriters * concurrentIncrements
	seen := map[string]bool{}
	for _, sc := range got.Scopes {
		seen[sc] = true
	}
	if len(got.Scopes) != n || len(seen) != n || got.Version != 1+n {
		t.Errorf("after %d updates: %d scopes (%d distinct), Version %d; want %d, %d, %d", n, len(got.Scopes), len(seen), got.Version, n, n, 1+n)
	}
}
