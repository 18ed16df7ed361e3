package admin_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/admin"
	"github.com/phivault/phivault/api"
)

// keyActions records the shreds and compromise marks that reach the
// vault, with who made them.
type keyActions struct {
	mu   sync.Mutex
	done []string // "shred p1 by mgr2", "compromised k1 by mgr2"
}

func (k *keyActions) note(ctx context.Context, what string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.done = append(k.done, what+" by "+api.ActorFromContext(ctx))
}

func (k *keyActions) actions() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.done)
}

func (k *keyActions) Shred(ctx context.Context, id string) (time.Time, error) {
	if id != "p1" {
		return time.Time{}, phivault.ErrNotFound
	}
	k.note(ctx, "shred "+id)
	return time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC), nil
}

func (k *keyActions) MarkCompromised(ctx context.Context, id phivault.KeyID) error {
	k.note(ctx, "compromised "+string(id))
	return nil
}

func (k *keyActions) Rotate(context.Context) (phivault.KeyID, error) { return "k2", nil }
func (k *keyActions) Status(context.Context) (any, error)            { return map[string]string{}, nil }

// newKeyHarness is the admin API with keyActions as its records and keys,
// and approve as its ApproveKeyActions.
func newKeyHarness(t *testing.T, approve bool) (*harness, *keyActions) {
	k := &keyActions{}
	h := newHarness(t, func(o *admin.Options) { o.Records, o.Keys, o.ApproveKeyActions = k, k, approve })
	return h, k
}

// TestKeyActions_secondAdmin: where the site asks for it, a shred and a
// compromise mark wait for a second security admin. Nothing happens on
// the request; the one who asked, the bootstrap token and a caller with no
// principal cannot approve; the bootstrap token cannot even ask; a second
// admin's approval applies it, in the second admin's name, and the trail
// holds the request, the approval and the mark.
func TestKeyActions_secondAdmin(t *testing.T) {
	h, k := newKeyHarness(t, true)

	for _, token := range []string{adminToken, nurseToken, bareToken} {
		for _, path := range []string{"/admin/patients/p1/$shred", "/admin/keys/k1/$compromised"} {
			if status, body := h.do(token, "POST", path, nil); status != http.StatusForbidden {
				t.Errorf("%s POST %s = %d %s, want 403", token, path, status, body)
			}
		}
	}
	if status, body := h.do(adminToken, "POST", "/admin/patients/p1/$shred", nil); !strings.Contains(string(body), "two security admins") {
		t.Errorf("bootstrap token's shred = %d %s, want a refusal that says two security admins are needed", status, body)
	}

	// What changes nothing is answered as before.
	if status, body := h.do(managerToken, "GET", "/admin/keys/status", nil); status != http.StatusOK {
		t.Errorf("key status = %d %s, want 200", status, body)
	}
	if status, body := h.do(managerToken, "POST", "/admin/keys/$rotate", nil); status != http.StatusAccepted {
		t.Errorf("rotation = %d %s, want 202 at once", status, body)
	}

	shred := h.pending(managerToken, "POST", "/admin/patients/p1/$shred", nil)
	mark := h.pending(managerToken, "POST", "/admin/keys/k1/$compromised", nil)
	if shred.Kind != admin.ChangeShred || shred.PatientID != "p1" || shred.Reason != admin.ReasonDestructive ||
		mark.Kind != admin.ChangeKeyCompromised || mark.KeyID != "k1" || mark.Reason != admin.ReasonDestructive {
		t.Errorf("pending changes %+v and %+v", shred, mark)
	}
	h.refusedApprovals(shred.ID)
	h.refusedApprovals(mark.ID)
	if done := k.actions(); len(done) != 0 {
		t.Fatalf("before approval the vault saw %v, want nothing", done)
	}

	for _, c := range []admin.PendingChange{shred, mark} {
		status, body := h.do(secondAdminToken, "POST", "/admin/changes/"+c.ID+"/approve", nil)
		if status != http.StatusOK || !strings.Contains(string(body), "OperationOutcome") {
			t.Errorf("approval of %s = %d %s, want 200 and the outcome", c.Kind, status, body)
		}
	}
	if done, want := k.actions(), []string{"shred p1 by mgr2", "compromised k1 by mgr2"}; !slices.Equal(done, want) {
		t.Errorf("after approval the vault saw %v, want %v", done, want)
	}

	var marks []*phivault.AuditEntry
	for _, e := range h.audit() {
		if e.Action == phivault.ActionKeyCompromised {
			marks = append(marks, e)
		}
	}
	// The three refused asks, then the mark, in the approver's name.
	if len(marks) != 4 || marks[3].Actor != "mgr2" || marks[3].Outcome != "ok" || marks[3].TargetID != "k1" ||
		!strings.Contains(marks[3].Decision, "requested by mgr1 approved") {
		for _, e := range marks {
			t.Logf("%+v", e)
		}
		t.Errorf("%d key-compromised entries, want 3 refused and 1 applied by mgr2 on mgr1's request", len(marks))
	}
	for _, m := range marks[:3] {
		if m.Outcome != phivault.EFORBIDDEN {
			t.Errorf("refused mark recorded with outcome %q, want %q", m.Outcome, phivault.EFORBIDDEN)
		}
	}
	// The request, the two refused approvals of admins, the approval.
	steps := h.entriesOf("Patient", "p1")
	if len(steps) != 4 || !strings.Contains(steps[0].Decision, "awaiting a second admin") ||
		steps[1].Outcome != phivault.EFORBIDDEN || steps[2].Outcome != phivault.EFORBIDDEN ||
		steps[3].Outcome != "ok" || !strings.Contains(steps[3].Decision, "requested by mgr1 approved") {
		for _, e := range steps {
			t.Logf("%+v", e)
		}
		t.Errorf("steps of the shred: %d entries, want the request, two refusals and the approval", len(steps))
	}

	// An approved shred of a patient the vault does not hold answers its
	// error; nothing is shredded.
	c := h.pending(managerToken, "POST", "/admin/patients/nobody/$shred", nil)
	if status, body := h.do(secondAdminToken, "POST", "/admin/changes/"+c.ID+"/approve", nil); status != http.StatusNotFound {
		t.Errorf("approved shred of an unknown patient = %d %s, want 404", status, body)
	}
}

// TestKeyActions_atOnceByDefault: without ApproveKeyActions a security
// admin's shred and mark apply at once, as before.
func TestKeyActions_atOnceByDefault(t *testing.T) {
	h, k := newKeyHarness(t, false)
	if status, body := h.do(managerToken, "POST", "/admin/patients/p1/$shred", nil); status != http.StatusOK {
		t.Errorf("shred = %d %s, want 200", status, body)
	}
	if status, body := h.do(managerToken, "POST", "/admin/keys/k1/$compromised", nil); status != http.StatusAccepted {
		t.Errorf("mark = %d %s, want 202", status, body)
	}
	if done, want := k.actions(), []string{"shred p1 by mgr1", "compromised k1 by mgr1"}; !slices.Equal(done, want) {
		t.Errorf("the vault saw %v, want %v", done, want)
	}
}
