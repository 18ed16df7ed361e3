package drill_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phivault/phivault/drill"
)

func TestRun_refusesNonDrillAccounts(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a drill with a non-drill account sent %s %s", r.Method, r.URL.Path)
	}))
	defer srv.Close()
	s, _ := drill.Lookup("snooping")
	tests := []struct {
		give string
		want bool // refused as not a drill account
	}{
		{"nurse.demo", true},
		{"drill.", true},      // the prefix alone
		{"Drill.nurse", true}, // prefix is case-sensitive, as usernames are
		{"xdrill.nurse", true},
	}
	for _, tt := range tests {
		target := &drill.Target{Base: srv.URL + "/fhir", HTTP: srv.Client(), Token: "t", Decoys: []string{"d"},
			Accounts: []drill.Account{{Username: "drill.nurse"}, {Username: tt.give}}}
		_, err := drill.Run(context.Background(), target, s, drill.Options{})
		var nd *drill.NotDrillAccountError
		if got := errors.As(err, &nd); got != tt.want || !strings.Contains(err.Error(), "not a drill account") {
			t.Errorf("Run with account %q = %v, want refused", tt.give, err)
		}
	}
	// No decoys: refused too, before any request.
	target := &drill.Target{Base: srv.URL + "/fhir", HTTP: srv.Client(), Token: "t", Accounts: []drill.Account{{Username: "drill.nurse"}}}
	if _, err := drill.Run(context.Background(), target, s, drill.Options{}); err == nil || !strings.Contains(err.Error(), "honeytoken") {
		t.Errorf("Run without decoys = %v, want refused", err)
	}
}

func TestRun_liveSkipsIsolatedOnly(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a skipped drill sent %s %s", r.Method, r.URL.Path)
	}))
	defer srv.Close()
	for _, name := range []string{"stolen-credentials", "compromised-key"} {
		s, _ := drill.Lookup(name)
		target := &drill.Target{Base: srv.URL + "/fhir", HTTP: srv.Client(), Token: "t", Decoys: []string{"d"}, Live: true,
			Accounts: []drill.Account{{Username: "drill.nurse"}}}
		rep, err := drill.Run(context.Background(), target, s, drill.Options{})
		if err != nil || rep.Skipped == "" || !rep.Pass {
			t.Errorf("live %s = %+v, %v; want skipped", name, rep, err)
		}
	}
}

func TestScenarios(t *testing.T) {
	want := []string{"snooping", "stolen-credentials", "bulk-export", "mass-update", "lost-device", "compromised-key"}
	if got := drill.Names(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, s := range drill.Scenarios() {
		if s.Containment == "" || s.Description == "" {
			t.Errorf("scenario %s does not say what it plays and what contained means", s.Name)
		}
		// Today's controls: every required playbook step is one the
		// build carries out.
		for _, r := range s.Required {
			if strings.Contains(strings.Join(s.Expected, ","), r) {
				t.Errorf("scenario %s lists %s as required and expected", s.Name, r)
			}
		}
	}
	if _, ok := drill.Lookup("no-such"); ok {
		t.Error("Lookup(no-such) found a scenario")
	}
}

func TestHTTPEvidence(t *testing.T) {
	tests := []struct {
		name   string
		status int
		verify func(context.Context, []byte) error
		want   string
	}{
		{"no archive", http.StatusNotFound, nil, drill.EvidenceFailed},
		{"no verifier", http.StatusOK, nil, drill.EvidenceUnavailable},
		{"verified", http.StatusOK, func(context.Context, []byte) error { return nil }, drill.EvidenceVerified},
		{"tampered", http.StatusOK, func(context.Context, []byte) error { return errors.New("entry 3 does not verify") }, drill.EvidenceFailed},
		{"server error", http.StatusInternalServerError, nil, drill.EvidenceFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/security/incidents/inc-1/evidence" || r.Header.Get("Authorization") != "Bearer officer" {
					t.Errorf("request %s %s", r.URL.Path, r.Header.Get("Authorization"))
				}
				w.WriteHeader(tt.status)
				w.Write([]byte("bundle"))
			}))
			defer srv.Close()
			target := &drill.Target{Base: srv.URL + "/fhir", HTTP: srv.Client(), Token: "officer"}
			got := drill.HTTPEvidence(tt.verify)(context.Background(), target, "inc-1")
			if got.Status != tt.want || got.Incident != "inc-1" {
				t.Errorf("evidence = %+v, want status %q", got, tt.want)
			}
		})
	}
}

func TestHistory(t *testing.T) {
	dir := t.TempDir()
	h := drill.NewHistory(dir)
	if got, err := h.Read(); err != nil || len(got) != 0 {
		t.Fatalf("Read of no history = %v, %v", got, err)
	}
	for _, name := range []string{"snooping", "mass-update"} {
		if err := h.Append(&drill.Report{Scenario: name, Pass: name == "snooping", DetectMS: 5, ContainMS: -1}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := h.Read()
	if err != nil || len(got) != 2 || got[0].Scenario != "snooping" || got[1].Pass || got[1].ContainMS != -1 {
		t.Fatalf("Read = %+v, %v", got, err)
	}
	st, err := os.Stat(filepath.Join(dir, "drills", drill.HistoryFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("history file mode = %v, %v; want 0600", st.Mode(), err)
	}
	// A line that is not a report is an error naming the line.
	f, _ := os.OpenFile(h.Path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("not json\n")
	f.Close()
	if _, err := h.Read(); err == nil || !strings.Contains(err.Error(), ":3:") {
		t.Fatalf("Read of a bad line = %v, want an error naming line 3", err)
	}
}
