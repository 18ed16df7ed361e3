package evidence_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/incident"
	"github.com/phivault/phivault/incident/evidence"
)

// tokens authenticates bearer tokens as fixed principals.
type tokens map[string]*phivault.Principal

func (a tokens) Authenticate(ctx context.Context, token string) (context.Context, error) {
	p, ok := a[token]
	if !ok {
		return nil, phivault.Errorf(phivault.EUNAUTHORIZED, "The bearer token is not valid.")
	}
	return phivault.WithPrincipal(ctx, p), nil
}

var people = tokens{
	"officer":  {ID: "po-1", Kind: phivault.PrincipalStaff, Roles: []string{phivault.RolePrivacyOfficer}},
	"security": {ID: "sa-1", Kind: phivault.PrincipalStaff, Roles: []string{phivault.RoleSecurityAdmin}},
	"nurse":    {ID: "nurse-1", Kind: phivault.PrincipalStaff, Roles: []string{"nurse"}},
}

func (f *fixture) handler(t *testing.T, withEvidence bool) http.Handler {
	t.Helper()
	alerts := detect.NewMemStore()
	if err := alerts.Commit(context.Background(), &detect.Commit{Alerts: []*detect.Alert{f.alert}}); err != nil {
		t.Fatal(err)
	}
	opts := incident.HandlerOptions{Service: f.svc, API: &detect.API{Auth: people, Log: f.log}, Alerts: alerts}
	if withEvidence {
		opts.Evidence = &evidence.Writer{Storage: f.store, Checkpoint: f.log.Checkpoint, Signer: f.signer, Verifier: f.verifier, Alerts: alerts}
	}
	return incident.NewHandler(opts)
}

func get(h http.Handler, token, target string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// lastEntry returns the trail's last entry.
func (f *fixture) lastEntry(t *testing.T) *phivault.AuditEntry {
	t.Helper()
	n := f.log.Tree().N
	data, err := f.store.ReadAuditEntries(context.Background(), n-1, n)
	if err != nil {
		t.Fatal(err)
	}
	e, err := auditlog.Decode(data[0])
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestHTTP_evidence(t *testing.T) {
	f := newFixture(t)
	h := f.handler(t, true)
	path := "/security/incidents/" + f.in.ID + "/evidence"
	for _, who := range []string{"officer", "security"} {
		w := get(h, who, path)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/x-tar" {
			t.Fatalf("%s: %d %s", who, w.Code, w.Body)
		}
		sum, err := evidence.Verify(bytes.NewReader(w.Body.Bytes()), f.verifier)
		if err != nil || sum.Incident != f.in.ID || sum.Alerts != 1 {
			t.Fatalf("%s: Verify = %+v, %v", who, sum, err)
		}
		// Recorded: an export of the incident, naming its patient.
		e := f.lastEntry(t)
		if e.Action != phivault.ActionExport || e.TargetID != f.in.ID || e.Outcome != "ok" || e.Actor != people[who].ID ||
			len(e.Compartments) != 1 || e.Compartments[0] != "p-1" {
			t.Fatalf("%s: entry %+v", who, e)
		}
	}
	t.Run("ErrForbidden", func(t *testing.T) {
		w := get(h, "nurse", path)
		if w.Code != http.StatusForbidden || bytes.Contains(w.Body.Bytes(), []byte(f.in.ID)) {
			t.Fatalf("nurse: %d %s", w.Code, w.Body)
		}
		if e := f.lastEntry(t); e.Actor != "nurse-1" || e.Outcome != phivault.EFORBIDDEN {
			t.Fatalf("refusal entry %+v", e)
		}
		if w := get(h, "", path); w.Code != http.StatusUnauthorized {
			t.Fatalf("no token: %d", w.Code)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		for _, id := range []string{"inc-00000000000000000000000000000000", "..%2f..%2fetc", "x"} {
			if w := get(h, "officer", "/security/incidents/"+id+"/evidence"); w.Code != http.StatusNotFound || w.Header().Get("Content-Type") == "application/x-tar" {
				t.Fatalf("%s: %d %s", id, w.Code, w.Body)
			}
			// The caller's words never become the entry's target.
			if e := f.lastEntry(t); e.Outcome != phivault.ENOTFOUND || id[0] != 'i' && e.TargetID != "" {
				t.Fatalf("%s: refusal entry %+v", id, e)
			}
		}
	})
	t.Run("ErrUnavailable", func(t *testing.T) {
		if w := get(f.handler(t, false), "officer", path); w.Code != http.StatusServiceUnavailable {
			t.Fatalf("no evidence writer: %d %s", w.Code, w.Body)
		}
		// An alert the incident links, gone from the detectors' store:
		// a clear refusal, not an archive without it.
		gone := incident.NewHandler(incident.HandlerOptions{Service: f.svc, API: &detect.API{Auth: people, Log: f.log},
			Evidence: &evidence.Writer{Storage: f.store, Checkpoint: f.log.Checkpoint, Signer: f.signer, Verifier: f.verifier, Alerts: detect.NewMemStore()}})
		if w := get(gone, "officer", path); w.Code != http.StatusServiceUnavailable || !bytes.Contains(w.Body.Bytes(), []byte("alert")) {
			t.Fatalf("alert gone: %d %s", w.Code, w.Body)
		}
	})
	// The entry comes before the answer: no trail, no archive.
	t.Run("ErrAuditDown", func(t *testing.T) {
		f.store.SetFail(errors.New("disk full"))
		defer f.store.SetFail(nil)
		w := get(h, "officer", path)
		if w.Code == http.StatusOK || w.Header().Get("Content-Type") == "application/x-tar" {
			t.Fatalf("with the trail down: %d, %d bytes", w.Code, w.Body.Len())
		}
	})
}
