package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/block"
	"github.com/phivault/phivault/incident"
	"github.com/prometheus/client_golang/prometheus"
)

// blocksFile is the network blocks' own database in the data folder
// (package block): addresses and networks, their ends and origins.
func (d dataDir) blocksFile() string { return d.path("blocks.db") }

// openBlocks opens the data folder's blocks, which the server checks
// every request's source against (server.Config.Blocks), and counts the
// requests they refuse in phivault_blocked_requests_total. No block may
// overlap a trusted proxy (it would block everyone behind it).
func (a *app) openBlocks(ctx context.Context) error {
	l, err := block.Open(ctx, a.cfg.Data.blocksFile())
	if err != nil {
		return fmt.Errorf("open the blocks' database: %w", err)
	}
	l.Protected = a.proxies
	a.blocks = l
	return a.metrics.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "phivault_blocked_requests_total",
		Help: "Requests refused with 403 because their source address is blocked (phivault blocks list).",
	}, func() float64 { return float64(l.Refused()) }))
}

// closeBlocks closes the blocks' database, if it was opened.
func (a *app) closeBlocks() error {
	if a.blocks == nil {
		return nil
	}
	return a.blocks.Close()
}

// reloadBlocks takes up changes "phivault blocks" made to the data
// folder's blocks while the server ran (on SIGHUP), recording the reload
// in the audit trail first.
func (a *app) reloadBlocks(ctx context.Context) {
	if a.blocks == nil {
		return
	}
	e := &phivault.AuditEntry{Time: time.Now().UTC(), Actor: "system:sighup", Action: phivault.ActionIncident,
		TargetType: "Block", Outcome: "ok", Decision: "reload blocks.db"}
	if err := a.audit.log.Append(ctx, e); err != nil {
		a.logger.Error("blocks: reload not recorded in the audit log; not reloaded", "error", err.Error())
		return
	}
	if err := a.blocks.Load(ctx); err != nil {
		a.logger.Error("blocks: reload failed; the blocks in force stay", "error", err.Error())
		return
	}
	a.logger.Info("blocks: reloaded")
}

// controls returns the vault's controls the incident responder acts
// through.
func (a *app) controls() *vaultControls {
	return &vaultControls{accounts: a.accounts, revoker: a.signIn.Sessions(), log: a.audit.log, blocks: a.blocks, clients: a.db}
}

// blockSource blocks the action's sources (addresses or networks) for
// a.For, or until undone: the server refuses their requests on every
// route from the moment it returns. The audit entry, naming the networks,
// comes first; a network that would block everyone, the server's own
// host or a trusted proxy fails the action with the reason, and nothing
// is blocked.
func (c *vaultControls) blockSource(ctx context.Context, a incident.Action) error {
	if c.blocks == nil {
		return phivault.Errorf(phivault.EUNAVAILABLE, "This server keeps no blocks.")
	}
	if len(a.Target.Sources) == 0 {
		return phivault.Errorf(phivault.EINVALID, "The action names no source address to block.")
	}
	prefixes := make([]netip.Prefix, len(a.Target.Sources))
	names := make([]string, len(a.Target.Sources))
	for i, s := range a.Target.Sources {
		p, err := block.ParsePrefix(s)
		if err != nil {
			return err
		}
		if err := c.blocks.Check(p); err != nil {
			return err
		}
		prefixes[i], names[i] = p, p.String()
	}
	now := time.Now()
	var until time.Time
	d := "block " + strings.Join(names, ",") + " until undone"
	if a.For > 0 {
		until = now.Add(a.For)
		d = "block " + strings.Join(names, ",") + " until " + until.UTC().Format(time.RFC3339)
	}
	e := phivault.NewRequestEntry(ctx, "", now, phivault.ActionIncident, "Block", a.ID)
	e.Decision = d + " by incident response"
	if err := c.log.Append(ctx, e); err != nil {
		return phivault.Errorf(phivault.EUNAVAILABLE, "The audit trail cannot be written; nothing was blocked.")
	}
	if _, err := c.blocks.Add(ctx, prefixes, until, a.ID); err != nil {
		return blockErr(err)
	}
	return nil
}

// unblockSource removes the blocks of the action (an expired one is gone
// already), recording it first.
func (c *vaultControls) unblockSource(ctx context.Context, a incident.Action) error {
	if c.blocks == nil {
		return phivault.Errorf(phivault.EUNAVAILABLE, "This server keeps no blocks.")
	}
	e := phivault.NewRequestEntry(ctx, "", time.Now(), phivault.ActionIncident, "Block", a.ID)
	e.Decision = "unblock by incident response"
	if err := c.log.Append(ctx, e); err != nil {
		return phivault.Errorf(phivault.EUNAVAILABLE, "The audit trail cannot be written; nothing was unblocked.")
	}
	if _, err := c.blocks.Remove(ctx, a.ID); err != nil {
		return blockErr(err)
	}
	return nil
}

// blockErr keeps a *phivault.Error, made to be shown, and turns any other
// (the blocks file failing) into a safe one.
func blockErr(err error) error {
	var pe *phivault.Error
	if errors.As(err, &pe) {
		return err
	}
	return phivault.Errorf(phivault.EUNAVAILABLE, "The blocks could not be changed.")
}

// blockClient suspends the action's OAuth client and ends every session
// issued to it (its own and those of people signed in through it): its
// access and refresh tokens fail on their next use, and the token
// endpoint issues it none while it is suspended.
func (c *vaultControls) blockClient(ctx context.Context, a incident.Action) error {
	if err := c.setClientStatus(ctx, a.Target.Client, phivault.AccountSuspended); err != nil {
		return err
	}
	return c.revoke(ctx, a.Target.Client)
}

// setClientStatus sets the client's status, recording the change in the
// audit trail first, and retries if another change wins meanwhile.
func (c *vaultControls) setClientStatus(ctx context.Context, id, status string) error {
	if c.clients == nil {
		return phivault.Errorf(phivault.EUNAVAILABLE, "This server keeps no OAuth clients.")
	}
	if id == "" {
		return phivault.Errorf(phivault.EINVALID, "The action names no OAuth client.")
	}
	for try := 0; ; try++ {
		cl, err := c.clients.ClientByID(ctx, id)
		if errors.Is(err, phivault.ErrNotFound) {
			return phivault.Errorf(phivault.EINVALID, "The client is not registered with this vault.")
		} else if err != nil {
			return err
		}
		if cl.Status == status {
			return nil
		}
		e := phivault.NewRequestEntry(ctx, "", time.Now(), phivault.ActionAccountChange, "Client", id)
		e.Decision = "status " + cl.Status + " → " + status + " by incident response"
		if err := c.log.Append(ctx, e); err != nil {
			return phivault.Errorf(phivault.EUNAVAILABLE, "The audit trail cannot be written; the client was not changed.")
		}
		cl.Status = status
		cl.Version++
		err = c.clients.UpdateClient(ctx, cl)
		if phivault.ErrorCode(err) == phivault.ECONFLICT && try < 5 {
			continue
		}
		return err
	}
}

// requireReenrolment clears the account's password, TOTP secret and
// passkeys and ends its sessions: neither the old password nor the old
// second factor signs in again. The account stays active, in the state
// of a new account without credentials, and an admin enrols it again the
// way a new account is enrolled (phivault users set-password, which a
// second admin approves, and phivault users enroll-totp). It cannot be
// undone: the cleared credentials are gone.
func (c *vaultControls) requireReenrolment(ctx context.Context, a incident.Action) error {
	id := a.Target.User
	for try := 0; ; try++ {
		acc, err := c.account(ctx, id)
		if err != nil {
			return err
		}
		if acc.PasswordHash == "" && len(acc.TOTPSecret) == 0 && len(acc.WebAuthn) == 0 {
			break // cleared already
		}
		e := phivault.NewRequestEntry(ctx, "", time.Now(), phivault.ActionAccountChange, "Account", id)
		e.Decision = "credentials cleared (new password and second factor required) by incident response"
		if err := c.log.Append(ctx, e); err != nil {
			return phivault.Errorf(phivault.EUNAVAILABLE, "The audit trail cannot be written; the account was not changed.")
		}
		clear(acc.TOTPSecret)
		acc.PasswordHash, acc.TOTPSecret, acc.WebAuthn = "", nil, nil
		acc.Version++
		err = c.accounts.UpdateAccount(ctx, acc)
		if phivault.ErrorCode(err) == phivault.ECONFLICT && try < 5 {
			continue
		}
		if err != nil {
			return err
		}
		break
	}
	return c.revoke(ctx, id)
}
