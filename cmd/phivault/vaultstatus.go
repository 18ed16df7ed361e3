package main

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/backup"
	"github.com/phivault/phivault/backup/restoredrill"
	"github.com/phivault/phivault/detect"
)

// TargetVaultStatus is the audit target type of GET /security/vault.
const TargetVaultStatus = "VaultStatus"

// vaultStatus is GET /security/vault: what an officer's overview shows of
// the vault itself. It holds no PHI: states, times, counts and names of
// witnesses and targets.
type vaultStatus struct {
	Sealed       bool            `json:"sealed"`
	Audit        auditStatus     `json:"audit"`
	Witnesses    []witnessStatus `json:"witnesses"`
	Backup       *backupStatus   `json:"backup"`        // nil: no scheduled backups (-backup-to)
	RestoreDrill *drillStatus    `json:"restore_drill"` // nil: no drill has run
}

type auditStatus struct {
	IntegrityOK  bool      `json:"integrity_ok"`  // the monitor found no mismatch since its last good pass
	LastVerified time.Time `json:"last_verified"` // its last good pass
	Verified     int64     `json:"verified"`      // entries that pass covered
}

type witnessStatus struct {
	Name      string `json:"name"`
	Published int64  `json:"published"`
	Failures  int64  `json:"failures"`
	Dropped   int64  `json:"dropped"`
	Queued    int    `json:"queued"`
}

type backupStatus struct {
	Target       string    `json:"target"`
	Latest       time.Time `json:"latest,omitzero"`        // the newest snapshot's time
	Snapshot     string    `json:"snapshot,omitempty"`     // and its id
	LastVerified time.Time `json:"last_verified,omitzero"` // the newest verification mark
	Error        string    `json:"error,omitempty"`        // the target could not be read (a safe message)
}

type drillStatus struct {
	At   time.Time `json:"at"`
	Pass bool      `json:"pass"`
	RTO  int64     `json:"rto_ms"`
	RPO  int64     `json:"rpo_ms"`
}

// vaultStatusRoute serves GET /security/vault to officers (the security
// API's guard); each read is an audit entry before the answer.
func (a *app) vaultStatusRoute(auth api.Authenticator) http.Handler {
	guard := &detect.API{Auth: auth, Log: a.audit.log}
	return guard.Guard(TargetVaultStatus, func(w http.ResponseWriter, r *http.Request) {
		e := guard.Entry(r, phivault.ActionExport, TargetVaultStatus, "")
		st := a.vaultStatus(r.Context())
		if !guard.Record(w, r, e) {
			return
		}
		detect.WriteJSON(w, http.StatusOK, st)
	})
}

func (a *app) vaultStatus(ctx context.Context) *vaultStatus {
	st := &vaultStatus{Sealed: a.seal.Sealed(), Witnesses: []witnessStatus{}}
	st.Audit.IntegrityOK = true
	if m := a.audit.monitor; m != nil {
		ms := m.Status()
		st.Audit = auditStatus{IntegrityOK: ms.OK, LastVerified: ms.LastSuccess, Verified: ms.Verified}
	}
	for _, q := range a.audit.queues {
		s := q.Stats()
		st.Witnesses = append(st.Witnesses, witnessStatus{Name: q.Name(), Published: s.Published, Failures: s.Failures, Dropped: s.Dropped, Queued: s.Queued})
	}
	if a.backups != nil && a.backups.target != nil {
		st.Backup = a.backups.status(ctx)
	}
	if reports, err := restoredrill.NewHistory(string(a.cfg.Data)).Read(); err == nil && len(reports) > 0 {
		last := reports[len(reports)-1]
		st.RestoreDrill = &drillStatus{At: last.Started, Pass: last.Pass, RTO: last.RTOMS, RPO: last.RPOMS}
	}
	return st
}

// backupStatusTTL is how long the overview's reading of the backup target
// is kept: reading it lists and verifies every manifest.
const backupStatusTTL = time.Minute

// statusCache keeps the latest reading of the target.
type statusCache struct {
	mu   sync.Mutex
	at   time.Time
	last *backupStatus
}

// status returns the newest snapshot and verification mark of the
// scheduled backups' target, read at most once a backupStatusTTL.
func (b *backups) status(ctx context.Context) *backupStatus {
	b.cache.mu.Lock()
	defer b.cache.mu.Unlock()
	if b.cache.last != nil && time.Since(b.cache.at) < backupStatusTTL {
		return b.cache.last
	}
	st := &backupStatus{Target: b.to}
	ms, err := backup.List(ctx, b.target, b.keys, nil)
	var marks map[string]*backup.Mark
	if err == nil {
		marks, err = backup.Marks(ctx, b.target, b.keys)
	}
	if err != nil {
		b.logger.Warn("backup status: read the target", "error", err.Error())
		st.Error = "The backup target could not be read."
	} else {
		if len(ms) > 0 {
			st.Latest, st.Snapshot = ms[len(ms)-1].Time, ms[len(ms)-1].Snapshot
		}
		for _, m := range marks {
			if m.Time.After(st.LastVerified) {
				st.LastVerified = m.Time
			}
		}
	}
	b.cache.at, b.cache.last = time.Now(), st
	return st
}

// forgetStatus drops the cached reading, after a backup.
func (b *backups) forgetStatus() {
	b.cache.mu.Lock()
	b.cache.last = nil
	b.cache.mu.Unlock()
}
