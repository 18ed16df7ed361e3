package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/incident"
	"github.com/phivault/phivault/incident/playbook"
	"github.com/phivault/phivault/internal/vaulttest"
)

// trailRecorder is an audit log that keeps what it was given, or refuses
// everything when failing.
type trailRecorder struct {
	mu      sync.Mutex
	entries []*phivault.AuditEntry
	failing bool
}

func (l *trailRecorder) Append(_ context.Context, es ...*phivault.AuditEntry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failing {
		return errors.New("disk full")
	}
	l.entries = append(l.entries, es...)
	return nil
}

func (l *trailRecorder) actions() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.entries {
		out = append(out, e.Action+" "+e.TargetType+"/"+e.TargetID)
	}
	return out
}

// TestControls_rotatePatientKey rotates a patient's data key as an
// incident action: an audit entry first, then the key; the records still
// read. A patient of another system fails the action with a reason, and
// a trail that cannot be written leaves the key alone.
func TestControls_rotatePatientKey(t *testing.T) {
	ctx := context.Background()
	v, db := vaulttest.Vault(t)
	res, _, err := v.Create(ctx, "Patient", []byte(`{"resourceType":"Patient","name":[{"family":"Okafor"}]}`), phivault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keyOf := func() string { // the patient's current key version
		var id string
		if err := db.View(ctx, func(tx phivault.StoreTx) error {
			vs, err := tx.KeyVersions(ctx, "patient/"+res.ID)
			if err == nil && len(vs) > 0 {
				id = vs[len(vs)-1].ID
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	before := keyOf()
	log := &trailRecorder{}
	c := &vaultControls{log: log, rotator: rotatorOf(v)}
	act := incident.Action{Kind: playbook.ActionRotatePatientKey, Target: incident.Target{Patients: []string{res.ID}}}

	log.failing = true
	if err := c.Do(ctx, act); phivault.ErrorCode(err) != phivault.EUNAVAILABLE {
		t.Fatalf("rotate with the trail down: %v, want EUNAVAILABLE", err)
	}
	if keyOf() != before {
		t.Fatal("the key was rotated although its audit entry could not be written")
	}
	log.failing = false
	if err := c.Do(ctx, act); err != nil {
		t.Fatal(err)
	}
	if keyOf() == before {
		t.Fatal("the patient's data key is unchanged after rotate-patient-key")
	}
	if got := log.actions(); len(got) != 1 || got[0] != phivault.ActionKeyRotate+" Patient/"+res.ID {
		t.Fatalf("audit entries %v, want one key-rotate of the patient", got)
	}
	if _, err := v.Read(ctx, "Patient", res.ID); err != nil {
		t.Fatalf("read after rotation: %v", err)
	}
	other := incident.Action{Kind: playbook.ActionRotatePatientKey, Target: incident.Target{Patients: []string{"lab:p1"}}}
	if err := c.Do(ctx, other); phivault.ErrorCode(err) != phivault.EUNSUPPORTED {
		t.Fatalf("rotate another system's patient: %v, want EUNSUPPORTED", err)
	}
}

// TestControls_compromiseKEK marks the current key-encryption key
// compromised as an incident action: recorded first, then marked, and a
// new version made current.
func TestControls_compromiseKEK(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keys, _ := vaulttest.Keyring(t, dir)
	db, _ := vaulttest.SQLite(t, dir)
	m := &keyManager{keys: &fileRotator{keys: keys, pass: []byte(vaulttest.Passphrase)}, store: db,
		logger: slog.New(slog.DiscardHandler), ctx: ctx, now: time.Now}
	log := &trailRecorder{}
	c := &vaultControls{log: log, keys: sealedKeys{&sealState{keyMgr: m}}}
	before := keys.Current()
	act := incident.Action{Kind: playbook.ActionCompromiseKEK}

	log.failing = true
	if err := c.Do(ctx, act); phivault.ErrorCode(err) != phivault.EUNAVAILABLE || keys.Current() != before {
		t.Fatalf("compromise with the trail down: %v, current %s; want EUNAVAILABLE and %s kept", err, keys.Current(), before)
	}
	log.failing = false
	if err := c.Do(ctx, act); err != nil {
		t.Fatal(err)
	}
	m.wg.Wait() // the rewrap it started, before the folder goes
	if keys.Current() == before {
		t.Fatal("the compromised version is still current")
	}
	if got := log.actions(); len(got) != 1 || got[0] != phivault.ActionKeyCompromised+" Key/"+string(before) {
		t.Fatalf("audit entries %v, want one key-compromised of %s", got, before)
	}
	sealed := &vaultControls{log: log, keys: sealedKeys{&sealState{}}}
	if err := sealed.Do(ctx, act); phivault.ErrorCode(err) != phivault.EUNAVAILABLE {
		t.Fatalf("compromise while sealed: %v, want EUNAVAILABLE", err)
	}
}

// notifyRecorder is a notifier that keeps the alert ids it was sent.
type notifyRecorder struct {
	ids  []string
	fail bool
}

func (n *notifyRecorder) Notify(_ context.Context, alerts []*detect.Alert) error {
	if n.fail {
		return errors.New("connection refused")
	}
	for _, a := range alerts {
		n.ids = append(n.ids, a.ID)
	}
	return nil
}

// TestControls_notify sends a playbook's alert to the channels its step
// names, and only those; a channel not configured, or a delivery that
// fails, fails the action.
func TestControls_notify(t *testing.T) {
	ctx := context.Background()
	store := detect.NewMemStore()
	alert := &detect.Alert{ID: "a1", Rule: "honeytoken", Severity: detect.SeverityCritical, State: detect.StateOpen, Detected: time.Now()}
	if err := store.Commit(ctx, &detect.Commit{Alerts: []*detect.Alert{alert}}); err != nil {
		t.Fatal(err)
	}
	hook, mail := &notifyRecorder{}, &notifyRecorder{}
	c := &vaultControls{alerts: store, notifiers: map[string]detect.Notifier{"webhook": hook, "email": mail}}
	act := incident.Action{Kind: playbook.ActionNotify, Alert: "a1", Channels: []string{"webhook"}}
	if err := c.Do(ctx, act); err != nil {
		t.Fatal(err)
	}
	if len(hook.ids) != 1 || hook.ids[0] != "a1" || len(mail.ids) != 0 {
		t.Fatalf("webhook got %v, e-mail %v; want a1 to the webhook only", hook.ids, mail.ids)
	}
	act.Channels = nil // every configured channel
	if err := c.Do(ctx, act); err != nil || len(mail.ids) != 1 || len(hook.ids) != 2 {
		t.Fatalf("notify to all: %v; webhook %v, e-mail %v", err, hook.ids, mail.ids)
	}
	act.Channels = []string{"syslog"}
	if err := c.Do(ctx, act); phivault.ErrorCode(err) != phivault.EUNSUPPORTED {
		t.Fatalf("notify an unconfigured channel: %v, want EUNSUPPORTED", err)
	}
	mail.fail = true
	act.Channels = []string{"email"}
	if err := c.Do(ctx, act); phivault.ErrorCode(err) != phivault.EUNAVAILABLE {
		t.Fatalf("notify a failing channel: %v, want EUNAVAILABLE", err)
	}
}
