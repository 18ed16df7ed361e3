package main

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/admin"
	"github.com/phivault/phivault/block"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/incident"
	"github.com/phivault/phivault/incident/playbook"
)

// vaultControls carries out incident actions on the running vault.
type vaultControls struct {
	accounts  phivault.AccountStore
	revoker   phivault.SessionRevoker // nil: no sessions to end
	log       phivault.AuditLog
	rotator   admin.PatientKeyRotator // nil: patient keys cannot be rotated
	keys      currentKEKMarker        // nil: no online keyring
	alerts    detect.Store            // notify reads the alert here
	notifiers map[string]detect.Notifier
	evidence  *evidenceCollector   // nil: no evidence collected
	blocks    *block.List          // nil: block-source fails; see respond_block.go
	clients   phivault.ClientStore // nil: block-client fails

	// containment serves restrict-compartment and raise-detail; see respond_restrict.go.
	containment containment
}

var _ incident.Controls = (*vaultControls)(nil)

// Do implements incident.Controls.
func (c *vaultControls) Do(ctx context.Context, a incident.Action) error {
	switch a.Kind {
	case playbook.ActionSuspendAccount:
		// Suspended, and its sessions ended with it: a suspended account
		// keeps no working token.
		if err := c.setStatus(ctx, a.Target.User, phivault.AccountSuspended); err != nil {
			return err
		}
		return c.revoke(ctx, a.Target.User)
	case playbook.ActionRevokeSessions:
		if _, err := c.account(ctx, a.Target.User); err != nil {
			return err
		}
		return c.revoke(ctx, a.Target.User)
	case playbook.ActionRotatePatientKey:
		return c.rotatePatientKeys(ctx, a)
	case playbook.ActionCompromiseKEK:
		return c.compromiseKEK(ctx)
	case playbook.ActionNotify:
		return c.notify(ctx, a)
	case playbook.ActionCollectEvidence:
		return c.collectEvidence(ctx)
	case playbook.ActionBlockSource:
		return c.blockSource(ctx, a)
	case playbook.ActionBlockClient:
		return c.blockClient(ctx, a)
	case playbook.ActionRequireReenrolment:
		return c.requireReenrolment(ctx, a)
	case playbook.ActionRestrictCompartment:
		return c.restrictCompartment(ctx, a)
	case playbook.ActionRaiseDetail:
		return c.raiseDetail(ctx, a)
	}
	return phivault.Errorf(phivault.EUNSUPPORTED, "This version of phivault does not carry out %s yet.", a.Kind)
}

// Undo implements incident.Controls.
func (c *vaultControls) Undo(ctx context.Context, a incident.Action) error {
	switch a.Kind {
	case playbook.ActionSuspendAccount:
		return c.setStatus(ctx, a.Target.User, phivault.AccountActive)
	case playbook.ActionBlockSource:
		return c.unblockSource(ctx, a)
	case playbook.ActionBlockClient:
		return c.setClientStatus(ctx, a.Target.Client, phivault.AccountActive)
	case playbook.ActionRestrictCompartment:
		return c.liftCompartment(ctx, a)
	case playbook.ActionRaiseDetail:
		return c.lowerDetail(ctx, a)
	}
	return phivault.Errorf(phivault.EUNSUPPORTED, "This version of phivault cannot undo %s.", a.Kind)
}

func (c *vaultControls) account(ctx context.Context, id string) (*phivault.Account, error) {
	acc, err := c.accounts.AccountByID(ctx, id)
	if errors.Is(err, phivault.ErrNotFound) {
		return nil, phivault.Errorf(phivault.EUNSUPPORTED, "The user is not an account of this vault (another system's users are suspended there).")
	}
	return acc, err
}

// setStatus sets the account's status, recording the change in the audit
// trail first, and retries if another change wins meanwhile.
func (c *vaultControls) setStatus(ctx context.Context, id, status string) error {
	for try := 0; ; try++ {
		acc, err := c.account(ctx, id)
		if err != nil {
			return err
		}
		if acc.Status == status {
			return nil
		}
		e := phivault.NewRequestEntry(ctx, "", time.Now(), phivault.ActionAccountChange, "Account", id)
		e.Decision = "status " + acc.Status + " → " + status + " by incident response"
		if err := c.log.Append(ctx, e); err != nil {
			return phivault.Errorf(phivault.EUNAVAILABLE, "The audit trail cannot be written; the account was not changed.")
		}
		acc.Status = status
		acc.Version++
		err = c.accounts.UpdateAccount(ctx, acc)
		if phivault.ErrorCode(err) == phivault.ECONFLICT && try < 5 {
			continue
		}
		return err
	}
}

func (c *vaultControls) revoke(ctx context.Context, id string) error {
	if c.revoker == nil {
		return nil
	}
	if err := c.revoker.RevokeSubject(context.WithoutCancel(ctx), id); err != nil {
		return phivault.Errorf(phivault.EUNAVAILABLE, "The sessions could not be revoked.")
	}
	return nil
}

// accountUser describes an account for playbook triggers; another
// system's user (or an unknown id) is no staff account.
func accountUser(accounts phivault.AccountStore) func(ctx context.Context, id string) playbook.User {
	return func(ctx context.Context, id string) playbook.User {
		acc, err := accounts.AccountByID(ctx, id)
		if err != nil {
			return playbook.User{}
		}
		return playbook.User{Roles: acc.Roles, Staff: acc.Kind == phivault.PrincipalStaff}
	}
}

// playbooks is the running server's playbook set, reloaded on SIGHUP.
type playbooks struct {
	dir    string
	set    atomic.Pointer[playbook.Set]
	log    phivault.AuditLog
	logger *slog.Logger
}

func loadPlaybooks(dir string, log phivault.AuditLog, logger *slog.Logger) (*playbooks, error) {
	set, err := playbook.Load(dir)
	if err != nil {
		return nil, errorWithHint("load playbooks: "+err.Error(), "fix the files in -playbooks (phivault playbook check), or leave it empty for the built-in set")
	}
	p := &playbooks{dir: dir, log: log, logger: logger}
	p.set.Store(set)
	return p, nil
}

func (p *playbooks) current() *playbook.Set { return p.set.Load() }

// reload reloads the folder (on SIGHUP). On error the current set stays
// in force. Every attempt is an audit entry, as a policy reload is.
func (p *playbooks) reload(ctx context.Context) {
	if p == nil || p.dir == "" {
		return
	}
	set, err := playbook.Load(p.dir)
	e := &phivault.AuditEntry{Time: time.Now().UTC(), Actor: "system:sighup", Action: phivault.ActionPolicyChange,
		TargetType: "Playbook", Outcome: "ok", Decision: "reload " + filepath.Base(p.dir)}
	if err != nil {
		e.Outcome = phivault.EINVALID
		p.logger.Error("playbooks: reload refused; the current set stays in force", "error", err.Error())
	} else {
		p.set.Store(set)
		p.logger.Info("playbooks: reloaded", "dir", p.dir, "playbooks", len(set.Playbooks))
	}
	if aerr := p.log.Append(ctx, e); aerr != nil {
		p.logger.Error("playbooks: reload not recorded in the audit log", "error", aerr.Error())
	}
}
