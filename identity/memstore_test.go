package identity_test

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/phivault/phivault"
)

// memStore is an in-memory phivault.AccountStore for tests.
type memStore struct {
	mu       sync.Mutex
	accounts map[string]*phivault.Account
	updates  int
}

var _ phivault.AccountStore = (*memStore)(nil)

func newMemStore() *memStore { return &memStore{accounts: make(map[string]*phivault.Account)} }

func clone(a *phivault.Account) *phivault.Account {
	c := *a
	c.Roles = slices.Clone(a.Roles)
	c.TOTPSecret = slices.Clone(a.TOTPSecret)
	return &c
}

func (s *memStore) CreateAccount(ctx context.Context, a *phivault.Account) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.accounts {
		if b.ID == a.ID || b.Username == a.Username {
			return phivault.Errorf(phivault.ECONFLICT, "The account exists.")
		}
	}
	a.Version = 1
	s.accounts[a.ID] = clone(a)
	return nil
}

func (s *memStore) AccountByID(ctx context.Context, id string) (*phivault.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.accounts[id]; ok {
		return clone(a), nil
	}
	return nil, phivault.ErrNotFound
}

func (s *memStore) AccountByUsername(ctx context.Context, username string) (*phivault.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.accounts {
		if a.Username == username {
			return clone(a), nil
		}
	}
	return nil, phivault.ErrNotFound
}

func (s *memStore) UpdateAccount(ctx context.Context, a *phivault.Account) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.accounts[a.ID]
	if !ok {
		return phivault.ErrNotFound
	}
	if old.Version != a.Version-1 {
		return phivault.Errorf(phivault.ECONFLICT, "The account changed since it was read.")
	}
	s.accounts[a.ID] = clone(a)
	s.updates++
	return nil
}

func (s *memStore) Accounts(ctx context.Context) ([]*phivault.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var list []*phivault.Account
	for _, a := range s.accounts {
		list = append(list, clone(a))
	}
	slices.SortFunc(list, func(a, b *phivault.Account) int { return strings.Compare(a.ID, b.ID) })
	return list, nil
}

func (s *memStore) AccountByFederatedSubject(ctx context.Context, subject string) (*phivault.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.accounts {
		if subject != "" && a.FederatedSubject == subject {
			return clone(a), nil
		}
	}
	return nil, phivault.ErrNotFound
}
