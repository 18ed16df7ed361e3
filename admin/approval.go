package admin

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// A security-relevant change an admin makes to their own account (roles,
// clearances, practitioner link, department, organization, status,
// training date, removing the TOTP second factor) is not applied: it is
// stored as a pending change that another admin approves or rejects
// (four-eyes rule, HIPAA 164.308(a)(3)-(4)). Changes to other accounts
// are applied at once, as before. Every step is an audit entry.

// Defaults of self-change approval.
const (
	// DefaultApprovalTTL is how long a pending self-change waits for a
	// second admin before it lapses.
	DefaultApprovalTTL = 24 * time.Hour
	// maxPendingChanges bounds the pending self-changes; only admins
	// create them.
	maxPendingChanges = 1000
)

// Change kinds of a PendingChange.
const (
	ChangeUpdate     = "update"      // a UserUpdate (PATCH, or PUT training)
	ChangeTOTPRemove = "totp-remove" // DELETE users/{id}/totp
)

// PendingChange is a self-change waiting for a second admin, as GET
// /admin/changes shows it.
type PendingChange struct {
	ID          string      `json:"id"`
	AccountID   string      `json:"account_id"`
	RequestedBy string      `json:"requested_by"` // the account that asked: the same as AccountID
	Requested   string      `json:"requested"`
	Expires     string      `json:"expires"`
	Kind        string      `json:"kind"` // ChangeUpdate or ChangeTOTPRemove
	Update      *UserUpdate `json:"update,omitempty"`
}

// pendingChange is a stored PendingChange.
type pendingChange struct {
	PendingChange
	expires time.Time
}

// approvals holds the pending self-changes, in memory: a restart drops
// them, and the admin asks again (nothing is applied without approval).
type approvals struct {
	mu sync.Mutex
	m  map[string]*pendingChange
}

// registerApprovals adds the approval routes to h.
func registerApprovals(h *Handler, u *userRoutes) {
	h.mux.Handle("GET /admin/changes", h.manage(u.listChanges))
	h.mux.Handle("POST /admin/changes/{change}/approve", h.manage(u.approveChange))
	h.mux.Handle("POST /admin/changes/{change}/reject", h.manage(u.rejectChange))
}

// isSelf reports whether the caller of r is the account id itself: a
// staff principal (a person) changing their own account.
func isSelf(r *http.Request, id string) bool {
	p := phivault.PrincipalFromContext(r.Context())
	return p != nil && p.Kind == phivault.PrincipalStaff && p.ID != "" && p.ID == id
}

// securityRelevant reports whether req changes anything that grants
// access: everything but the external id.
func (req *UserUpdate) securityRelevant() bool {
	return req.Roles != nil || req.Clearances != nil || req.PractitionerID != nil || req.Status != nil ||
		req.Department != nil || req.Organization != nil || req.TrainingValidUntil != nil
}

// requestChange stores c for the account id as a pending self-change,
// records it, and answers 202 with the change.
func (u *userRoutes) requestChange(w http.ResponseWriter, r *http.Request, id, kind string, upd *UserUpdate) {
	ctx := r.Context()
	if _, err := u.h.opts.Accounts.AccountByID(ctx, id); err != nil {
		u.h.finish(w, r, "Account", id, err, 0, nil)
		return
	}
	cid, err := u.h.newID()
	if err != nil {
		u.h.finish(w, r, "Account", id, err, 0, nil)
		return
	}
	now := u.h.now()
	c := &pendingChange{PendingChange: PendingChange{
		ID: cid, AccountID: id, RequestedBy: id, Kind: kind, Update: upd,
		Requested: now.UTC().Format(time.RFC3339), Expires: now.Add(DefaultApprovalTTL).UTC().Format(time.RFC3339),
	}, expires: now.Add(DefaultApprovalTTL)}
	u.approvals.mu.Lock()
	u.expireChangesLocked(now)
	full := len(u.approvals.m) >= maxPendingChanges
	if !full {
		u.approvals.m[cid] = c
	}
	u.approvals.mu.Unlock()
	if full {
		u.h.finish(w, r, "Account", id, phivault.Errorf(phivault.EUNAVAILABLE, "Too many changes await approval; approve or reject some first."), 0, nil)
		return
	}
	if err := u.h.recordStep(ctx, id, nil, "self-change "+cid+" requested; awaiting a second admin"); err != nil {
		u.approvals.mu.Lock()
		delete(u.approvals.m, cid)
		u.approvals.mu.Unlock()
		writeError(w, err)
		return
	}
	u.h.log.Info("admin: self-change awaits approval", "change", cid, "account", id)
	writeJSON(w, http.StatusAccepted, map[string]any{
		"change":  c.PendingChange,
		"message": "A change to your own account needs a second admin: it was not applied. Another admin approves it with POST /admin/changes/" + cid + "/approve.",
	})
}

// expireChangesLocked drops lapsed changes; approvals.mu must be held.
func (u *userRoutes) expireChangesLocked(now time.Time) {
	for id, c := range u.approvals.m {
		if !now.Before(c.expires) {
			delete(u.approvals.m, id)
		}
	}
}

// listChanges answers the pending self-changes, oldest first.
func (u *userRoutes) listChanges(w http.ResponseWriter, r *http.Request) {
	u.approvals.mu.Lock()
	u.expireChangesLocked(u.h.now())
	out := []PendingChange{}
	for _, c := range u.approvals.m {
		out = append(out, c.PendingChange)
	}
	u.approvals.mu.Unlock()
	slices.SortFunc(out, func(a, b PendingChange) int {
		return cmp.Or(cmp.Compare(a.Requested, b.Requested), cmp.Compare(a.ID, b.ID))
	})
	writeJSON(w, http.StatusOK, map[string]any{"changes": out})
}

var errSameAdmin = phivault.Errorf(phivault.EFORBIDDEN, "A change to your own account must be approved by another admin.")

// approveChange applies a pending self-change, if the caller is another
// admin than the one who asked (and than the account it changes).
func (u *userRoutes) approveChange(w http.ResponseWriter, r *http.Request) {
	cid := r.PathValue("change")
	p := phivault.PrincipalFromContext(r.Context())
	u.approvals.mu.Lock()
	u.expireChangesLocked(u.h.now())
	c := u.approvals.m[cid]
	var err error
	switch {
	case c == nil:
		err = phivault.Errorf(phivault.ENOTFOUND, "No such change awaits approval; it may have lapsed after %v.", DefaultApprovalTTL)
	case p != nil && (p.ID == c.RequestedBy || p.ID == c.AccountID):
		err = errSameAdmin
	default:
		delete(u.approvals.m, cid) // taken: approved once, whatever happens next
	}
	u.approvals.mu.Unlock()
	if err != nil {
		target := ""
		if c != nil {
			target = c.AccountID
		}
		if aerr := u.h.recordStep(r.Context(), target, err, "self-change "+clipID(cid)+" approval refused"); aerr != nil {
			err = aerr
		}
		writeError(w, err)
		return
	}
	var a *phivault.Account
	switch c.Kind {
	case ChangeTOTPRemove:
		a, err = u.h.ModifyAccount(r.Context(), c.AccountID, func(a *phivault.Account) error {
			a.TOTPSecret, a.TOTPLastStep = nil, 0
			return nil
		})
	default:
		a, err = u.h.ModifyAccount(r.Context(), c.AccountID, c.Update.apply)
	}
	if aerr := u.h.recordStep(r.Context(), c.AccountID, err, "self-change "+cid+" requested by "+c.RequestedBy+" approved"); aerr != nil && err == nil {
		err = aerr
	}
	if err != nil {
		writeError(w, err)
		return
	}
	u.h.log.Info("admin: self-change approved", "change", cid, "account", a)
	writeJSON(w, http.StatusOK, NewUser(a))
}

// rejectChange drops a pending self-change: another admin rejects it, or
// the one who asked withdraws it.
func (u *userRoutes) rejectChange(w http.ResponseWriter, r *http.Request) {
	cid := r.PathValue("change")
	u.approvals.mu.Lock()
	u.expireChangesLocked(u.h.now())
	c := u.approvals.m[cid]
	delete(u.approvals.m, cid)
	u.approvals.mu.Unlock()
	if c == nil {
		writeError(w, phivault.Errorf(phivault.ENOTFOUND, "No such change awaits approval."))
		return
	}
	if err := u.h.recordStep(r.Context(), c.AccountID, nil, "self-change "+cid+" rejected"); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, fhir.NewOutcome("information", "informational", "The change was rejected; nothing was applied."))
}

// clipID returns id if it looks like one of ours (32 hex digits), else a
// placeholder, so that nothing a caller typed reaches the audit trail.
func clipID(id string) string {
	if len(id) != 32 || !isHex(id) {
		return "(unknown)"
	}
	return id
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// recordStep appends the audit entry of one step of a self-change to the
// account id: outcome from err, and decision saying which step.
func (h *Handler) recordStep(ctx context.Context, id string, err error, decision string) error {
	return recordChange(ctx, h.opts.Audit, h.log, h.now(), "Account", id, err, decision)
}
