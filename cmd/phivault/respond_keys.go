package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/admin"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/incident"
	"github.com/phivault/phivault/incident/playbook"
	"github.com/phivault/phivault/keyring"
)

// currentKEKMarker marks the current key-encryption key compromised,
// which rotates it out (sealedKeys is one).
type currentKEKMarker interface {
	MarkCurrentCompromised(ctx context.Context, before func(phivault.KeyID) error) (phivault.KeyID, error)
}

// rotatePatientKeys gives each of the action's patients a new data key,
// re-encrypting their records under it (admin's $rotate-key, one patient
// after the other), each preceded by its audit entry.
func (c *vaultControls) rotatePatientKeys(ctx context.Context, a incident.Action) error {
	if c.rotator == nil {
		return phivault.Errorf(phivault.EUNSUPPORTED, "This server cannot rotate patient keys.")
	}
	if len(a.Target.Patients) == 0 {
		return phivault.Errorf(phivault.EINVALID, "The action names no patient.")
	}
	var errs []error
	for _, p := range a.Target.Patients {
		if strings.Contains(p, ":") {
			errs = append(errs, phivault.Errorf(phivault.EUNSUPPORTED, "A patient of another system has no key in this vault."))
			continue
		}
		e := phivault.NewRequestEntry(ctx, "", time.Now(), phivault.ActionKeyRotate, "Patient", p)
		e.Decision = "by incident response"
		if err := c.log.Append(ctx, e); err != nil {
			return phivault.Errorf(phivault.EUNAVAILABLE, "The audit trail cannot be written; no key was rotated.")
		}
		err := c.rotator.RotatePatientKey(context.WithoutCancel(ctx), p, nil)
		switch phivault.ErrorCode(err) {
		case "":
		case phivault.ENOTFOUND, phivault.EGONE:
			// Not in this vault, or shredded: no key to expose any more.
		default:
			errs = append(errs, phivault.Errorf(phivault.EUNAVAILABLE, "A patient key could not be rotated; approve again to continue."))
		}
	}
	return firstError(errs)
}

// compromiseKEK marks the current key-encryption key compromised, which
// makes a new version current and rewraps every stored key under it in
// the background (GET /admin/keys/status follows it).
func (c *vaultControls) compromiseKEK(ctx context.Context) error {
	if c.keys == nil {
		return phivault.Errorf(phivault.EUNSUPPORTED, "This server's keyring cannot be managed online.")
	}
	_, err := c.keys.MarkCurrentCompromised(ctx, func(id phivault.KeyID) error {
		e := phivault.NewRequestEntry(ctx, "", time.Now(), phivault.ActionKeyCompromised, "Key", string(id))
		e.Decision = "by incident response"
		if err := c.log.Append(ctx, e); err != nil {
			return phivault.Errorf(phivault.EUNAVAILABLE, "The audit trail cannot be written; the key was not marked.")
		}
		return nil
	})
	if errors.Is(err, keyring.ErrSealed) {
		return phivault.Errorf(phivault.EUNAVAILABLE, "The vault is sealed; unseal it and approve again.")
	}
	return err
}

// MarkCurrentCompromised implements currentKEKMarker: before is called
// with the current version (to record the change) before it is marked.
func (k sealedKeys) MarkCurrentCompromised(ctx context.Context, before func(phivault.KeyID) error) (phivault.KeyID, error) {
	m := k.s.manager()
	if m == nil {
		return "", keyring.ErrSealed
	}
	id := m.keys.Current()
	if err := before(id); err != nil {
		return "", err
	}
	return id, m.MarkCompromised(ctx, id)
}

// notify sends the action's alert to the notifiers its channels name
// (every configured one if none), whatever its score: a playbook's
// notify step pages even an alert below the paging threshold.
func (c *vaultControls) notify(ctx context.Context, a incident.Action) error {
	if c.alerts == nil || a.Alert == "" {
		return phivault.Errorf(phivault.EUNSUPPORTED, "The action names no alert to send.")
	}
	var names []string
	for _, ch := range playbook.Channels {
		if _, ok := c.notifiers[ch]; ok && (len(a.Channels) == 0 || slices.Contains(a.Channels, ch)) {
			names = append(names, ch)
		}
	}
	if len(names) == 0 {
		return phivault.Errorf(phivault.EUNSUPPORTED, "No notifier is configured for this step's channels (serve -detect-webhook, -detect-smtp, -detect-cef-syslog, -detect-ocsf-file).")
	}
	alert, err := c.alerts.Alert(ctx, a.Alert)
	if err != nil {
		return phivault.Errorf(phivault.EUNAVAILABLE, "The alert could not be read.")
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), detect.DefaultNotifyTimeout)
	defer cancel()
	var failed []string
	for _, name := range names {
		if err := c.notifiers[name].Notify(ctx, []*detect.Alert{alert}); err != nil {
			failed = append(failed, name)
		}
	}
	if len(failed) > 0 {
		return phivault.Errorf(phivault.EUNAVAILABLE, "Not delivered to %s.", strings.Join(failed, ", "))
	}
	return nil
}

func firstError(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}

// rotatorOf returns records as a patient key rotator, or nil.
func rotatorOf(records phivault.RecordService) admin.PatientKeyRotator {
	r, _ := records.(admin.PatientKeyRotator)
	return r
}
