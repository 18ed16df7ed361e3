package admin_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/admin"
)

func TestTraining_Set(t *testing.T) {
	h := newHarness(t)
	u := h.createUser("dr.ross", "physician")
	var got admin.User
	h.must(200, "PUT", "/admin/users/"+u.ID+"/training", `{"valid_until":"2031-03-15"}`, &got)
	if got.TrainingValidUntil != "2031-03-15" {
		t.Errorf("training = %q, want 2031-03-15", got.TrainingValidUntil)
	}
	acc, _ := h.db.AccountByID(context.Background(), u.ID)
	if want := time.Date(2031, 3, 15, 23, 59, 59, 0, time.UTC); !acc.TrainingValidUntil.Equal(want) {
		t.Errorf("stored %v, want %v (valid through the whole day)", acc.TrainingValidUntil, want)
	}
	if h.revoker.Count(u.ID) != 1 {
		t.Errorf("%d revocations after a training change, want 1", h.revoker.Count(u.ID))
	}
	h.must(400, "PUT", "/admin/users/"+u.ID+"/training", `{"valid_until":"2031-02-30"}`, nil)
	h.must(404, "PUT", "/admin/users/nope/training", `{"valid_until":"2031-02-03"}`, nil)
	got = admin.User{}
	h.must(200, "PUT", "/admin/users/"+u.ID+"/training", `{"valid_until":""}`, &got)
	if got.TrainingValidUntil != "" {
		t.Errorf("cleared training = %q", got.TrainingValidUntil)
	}
}

func TestTraining_Import(t *testing.T) {
	h := newHarness(t)
	a := h.createUser("alice", "nurse")
	b := h.createUser("bob", "billing")
	before := len(h.audit())

	bad := "username,valid_until\nalice,2030-01-01\nmallory,2030-01-01\nbob,01/01/2030\nalice,2030-02-02\nbob\n\"unterminated\n"
	status, body := h.do(adminToken, "POST", "/admin/training", bad)
	for _, want := range []string{"line 3: no account", "line 4: valid_until", "line 5: the same username as line 2", "line 6: want 2 columns", "line 7", "nothing was imported"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("bad import answer lacks %q: %s", want, body)
		}
	}
	if status != 400 || strings.Contains(string(body), "mallory") {
		t.Errorf("bad import = %d %s, want 400 without the usernames", status, body)
	}
	for _, id := range []string{a.ID, b.ID} {
		acc, _ := h.db.AccountByID(context.Background(), id)
		if !acc.TrainingValidUntil.IsZero() || acc.Version != 1 {
			t.Errorf("account changed by a bad import: %v v%d", acc.TrainingValidUntil, acc.Version)
		}
	}
	h.must(400, "POST", "/admin/training", "", nil)
	h.must(400, "POST", "/admin/training", "username,valid_until\n", nil)

	var res admin.TrainingImport
	h.must(200, "POST", "/admin/training", "alice,2030-01-01\n bob , 2030-05-06\n", &res)
	if res.Rows != 2 || res.Updated != 2 {
		t.Errorf("import = %+v, want 2 rows, 2 updated", res)
	}
	h.must(200, "POST", "/admin/training", "alice,2030-01-01\nbob,2030-07-01\n", &res)
	if res.Updated != 1 {
		t.Errorf("re-import = %+v, want 1 updated", res)
	}
	var got admin.User
	h.must(200, "GET", "/admin/users/"+b.ID, nil, &got)
	if got.TrainingValidUntil != "2030-07-01" {
		t.Errorf("bob's training = %q", got.TrainingValidUntil)
	}
	entries := h.audit()[before:]
	ok := 0
	for _, e := range entries {
		if e.Outcome == "ok" {
			ok++
		}
	}
	if ok != 3 {
		t.Errorf("%d ok audit entries for the imports, want 3 (one per changed account)", ok)
	}
}
