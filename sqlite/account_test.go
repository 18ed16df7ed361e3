package sqlite_test

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/sqlite"
)

func TestAccountStore(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "phivault.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var s phivault.AccountStore = db

	now := time.Date(2026, 3, 1, 9, 0, 0, 123000, time.UTC)
	a := &phivault.Account{
		ID: "acc-1", Username: "jdoe", Roles: []string{"nurse", "physician"}, Department: "cardiology",
		PractitionerID: "prac-1", TrainingValidUntil: now.AddDate(1, 0, 0), Status: phivault.AccountActive,
		PasswordHash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		TOTPSecret:   []byte("12345678901234567890"), Created: now,
	}
	if err := s.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	if a.Version != 1 {
		t.Errorf("Version after create = %d; want 1", a.Version)
	}
	for _, dup := range []*phivault.Account{{ID: "acc-1", Username: "other"}, {ID: "acc-2", Username: "jdoe"}} {
		if err := s.CreateAccount(ctx, dup); phivault.ErrorCode(err) != phivault.ECONFLICT {
			t.Errorf("CreateAccount(duplicate %s/%s) = %v; want ECONFLICT", dup.ID, dup.Username, err)
		}
	}

	byID, err := s.AccountByID(ctx, "acc-1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(byID, a) {
		t.Errorf("AccountByID = %+v\nwant %+v", byID, a)
	}
	byName, err := s.AccountByUsername(ctx, "jdoe")
	if err != nil || !reflect.DeepEqual(byName, a) {
		t.Errorf("AccountByUsername = %+v, %v\nwant %+v", byName, err, a)
	}
	if _, err := s.AccountByID(ctx, "nope"); err != phivault.ErrNotFound {
		t.Errorf("AccountByID(missing) = %v; want ErrNotFound", err)
	}
	if _, err := s.AccountByUsername(ctx, "nope"); err != phivault.ErrNotFound {
		t.Errorf("AccountByUsername(missing) = %v; want ErrNotFound", err)
	}

	// Update with the next version succeeds; a stale one conflicts.
	b := *byID
	b.Version = 2
	b.Status = phivault.AccountSuspended
	b.FailedLogins, b.LastFailure, b.LockedUntil, b.TOTPLastStep = 3, now, now.Add(15*time.Minute), 42
	b.Roles = nil
	if err := s.UpdateAccount(ctx, &b); err != nil {
		t.Fatal(err)
	}
	got, _ := s.AccountByID(ctx, "acc-1")
	b.Roles = []string{}
	if !reflect.DeepEqual(got, &b) {
		t.Errorf("after update = %+v\nwant %+v", got, &b)
	}
	stale := *byID
	stale.Version = 2
	if err := s.UpdateAccount(ctx, &stale); phivault.ErrorCode(err) != phivault.ECONFLICT {
		t.Errorf("stale UpdateAccount = %v; want ECONFLICT", err)
	}
	missing := phivault.Account{ID: "nope", Username: "nope", Version: 2}
	if err := s.UpdateAccount(ctx, &missing); err != phivault.ErrNotFound {
		t.Errorf("UpdateAccount(missing) = %v; want ErrNotFound", err)
	}
	// Renaming onto a taken username conflicts.
	if err := s.CreateAccount(ctx, &phivault.Account{ID: "acc-2", Username: "asmith", Status: phivault.AccountActive}); err != nil {
		t.Fatal(err)
	}
	c, _ := s.AccountByID(ctx, "acc-2")
	c.Version++
	c.Username = "jdoe"
	if err := s.UpdateAccount(ctx, c); phivault.ErrorCode(err) != phivault.ECONFLICT {
		t.Errorf("UpdateAccount(taken username) = %v; want ECONFLICT", err)
	}
}
