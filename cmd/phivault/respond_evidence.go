package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/incident"
	"github.com/phivault/phivault/incident/evidence"
)

// evidenceDir is where collect-evidence writes archives in the data
// folder (0700; each archive 0600):
//
//	evidence/INCIDENT-TIMESTAMP.phivault-evidence
func (d dataDir) evidenceDir() string { return d.path("evidence") }

// evidenceWriter returns the writer of the running server's evidence
// archives: the trail of a's database, a checkpoint signed for each
// archive, the manifest signed with the same key, and the alerts looked
// up in alerts.
func (a *app) evidenceWriter(alerts incident.Alerts) (*evidence.Writer, error) {
	signer, verifier, err := auditKeys(a.cfg.Data)
	if err != nil {
		return nil, err
	}
	return &evidence.Writer{Storage: a.db, Checkpoint: a.audit.log.Checkpoint, Signer: signer, Verifier: verifier, Alerts: alerts}, nil
}

// evidenceCollector carries out collect-evidence: the archive of the
// action's incident (incident.IncidentFromContext), written into the
// data folder.
type evidenceCollector struct {
	data    dataDir
	service *incident.Service
	writer  *evidence.Writer
	log     phivault.AuditLog
	logger  *slog.Logger
	now     func() time.Time // nil means time.Now
}

// collectEvidence carries out collect-evidence for vaultControls.Do.
func (c *vaultControls) collectEvidence(ctx context.Context) error {
	if c.evidence == nil {
		return phivault.Errorf(phivault.EUNSUPPORTED, "This server collects no evidence.")
	}
	_, err := c.evidence.collect(ctx)
	return err
}

// collect writes the archive of the incident ctx names, recording the
// export in the audit trail first, and returns the file's path.
func (c *evidenceCollector) collect(ctx context.Context) (string, error) {
	id := incident.IncidentFromContext(ctx)
	if id == "" {
		return "", phivault.Errorf(phivault.EINVALID, "collect-evidence needs the incident it is carried out for.")
	}
	in, err := c.service.Get(ctx, id)
	if err != nil {
		return "", err
	}
	tl, err := c.service.Timeline(ctx, id)
	if err != nil {
		return "", err
	}
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	t := now().UTC()
	e := phivault.NewRequestEntry(ctx, "", t, phivault.ActionExport, incident.TargetType, id)
	e.Decision = "evidence archive to the data folder"
	for _, p := range in.Scope.Patients {
		if !strings.Contains(p, ":") { // another system's patient is no compartment here
			e.Compartments = append(e.Compartments, p)
		}
	}
	if err := c.log.Append(ctx, e); err != nil {
		return "", phivault.Errorf(phivault.EUNAVAILABLE, "The audit trail cannot be written; no evidence was collected.")
	}
	dir := c.data.evidenceDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", phivault.Errorf(phivault.EUNAVAILABLE, "The evidence folder cannot be made.")
	}
	path := filepath.Join(dir, id+"-"+t.Format("20060102T150405Z")+evidence.FileExt)
	if _, err := writeStreamAtomic(path, 0o600, func(w io.Writer) (int64, error) {
		s, err := c.writer.Write(ctx, w, in, tl)
		return s.Entries, err
	}); err != nil {
		c.logger.Error("collect-evidence: the archive could not be written", "incident", id, "error", err.Error())
		return "", phivault.Errorf(phivault.EUNAVAILABLE, "The evidence archive could not be written.")
	}
	return path, nil
}
