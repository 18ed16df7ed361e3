package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault/drill"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestDrillLive plays drills against an in-process vault as against a live
// server: a non-drill account is refused before any request, a drill
// suspends the drill account and the account is active again after it
// (its incidents closed); the scenarios that would harm a live server
// are skipped.
func TestDrillLive(t *testing.T) {
	ctx := context.Background()
	target, stop, err := openDrillVault(ctx, t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	target.Live = true

	// Not a drill account: refused, nothing played.
	bad := *target
	bad.Accounts = []drill.Account{{Username: "nurse.demo", Password: "x"}}
	s, _ := drill.Lookup("bulk-export")
	var nd *drill.NotDrillAccountError
	if _, err := drill.Run(ctx, &bad, s, drill.Options{}); !errors.As(err, &nd) {
		t.Fatalf("Run as nurse.demo = %v, want refused as not a drill account", err)
	}

	// One drill account each: a drill's late alerts (the detectors
	// still reading its attack as it ends) may answer its account after
	// the restore, which must not fail the next drill.
	accounts := target.Accounts
	for i, name := range []string{"bulk-export", "mass-update", "stolen-credentials"} {
		target.Accounts = accounts[i : i+1]
		s, _ := drill.Lookup(name)
		rep, err := drill.Run(ctx, target, s, drill.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Pass {
			var b strings.Builder
			rep.Text(&b)
			t.Fatalf("live %s failed:\n%s", name, b.String())
		}
		if name == "stolen-credentials" {
			if rep.Skipped == "" {
				t.Fatalf("live stolen-credentials was played: %+v", rep)
			}
			continue
		}
		if rep.DetectMS < 0 || rep.ContainMS < 0 || len(rep.Incidents) == 0 {
			t.Fatalf("live %s: %+v", name, rep)
		}
		// Restored: the drill account is active, its incidents closed.
		var users struct{ Users []struct{ Status string } }
		if _, err := officerGet(ctx, target, "/fhir/admin/users?username="+target.Accounts[0].Username, &users); err != nil ||
			len(users.Users) != 1 || users.Users[0].Status != "active" {
			t.Fatalf("after live %s the drill account is %+v (%v), want active", name, users, err)
		}
		for _, id := range rep.Incidents {
			var in struct{ Phase string }
			if _, err := officerGet(ctx, target, "/security/incidents/"+id, &in); err != nil || in.Phase != "closed" {
				t.Fatalf("after live %s incident %s is %q (%v), want closed", name, id, in.Phase, err)
			}
		}
	}
}

// officerGet reads path from the drill target as its officer.
func officerGet(ctx context.Context, t *drill.Target, path string, out any) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(t.Base, "/fhir")+path, nil)
	req.Header.Set("Authorization", "Bearer "+t.Token)
	res, err := t.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	return res.StatusCode, json.NewDecoder(res.Body).Decode(out)
}

// TestDrillSchedule runs the scheduler of serve -drill-every with one
// scenario: each run is kept in the data folder's history and counted by
// result; a drill whose evidence does not verify is counted as failed and
// logged with ids and reasons only.
func TestDrillSchedule(t *testing.T) {
	data := t.TempDir()
	var logs strings.Builder
	reg := prometheus.NewRegistry()
	d := newDrillSchedule(time.Millisecond, data, slog.New(slog.NewJSONHandler(&syncWriter{w: &logs}, nil)), reg)
	lost, _ := drill.Lookup("lost-device")
	snoop, _ := drill.Lookup("snooping")
	// The first incident's evidence (lost-device's) is missing, as in
	// this build; the second's (snooping's) fails its check.
	var calls atomic.Int32
	d.scenarios, d.opts = []*drill.Scenario{lost, snoop}, drill.Options{Evidence: func(ctx context.Context, _ *drill.Target, id string) drill.Evidence {
		if calls.Add(1) == 1 {
			return drill.Evidence{Incident: id, Status: drill.EvidenceUnavailable}
		}
		return drill.Evidence{Incident: id, Status: drill.EvidenceFailed, Detail: "entry 3 does not verify"}
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.run(ctx); close(done) }()
	h := drill.NewHistory(data)
	for {
		reports, err := h.Read()
		if err != nil {
			t.Fatal(err)
		}
		if len(reports) >= 2 {
			cancel()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	<-done
	reports, _ := h.Read()
	if reports[0].Scenario != "lost-device" || !reports[0].Pass || reports[1].Scenario != "snooping" || reports[1].Pass {
		t.Fatalf("history: %+v %+v", reports[0], reports[1])
	}
	if got := testutil.ToFloat64(d.runs.WithLabelValues("lost-device", "pass")); got < 1 {
		t.Errorf("phivault_drills_total{lost-device,pass} = %v, want ≥ 1", got)
	}
	if got := testutil.ToFloat64(d.runs.WithLabelValues("snooping", "fail")); got < 1 {
		t.Errorf("phivault_drills_total{snooping,fail} = %v, want ≥ 1", got)
	}
	if !strings.Contains(logs.String(), `"msg":"drill failed","scenario":"snooping","failures":["the evidence bundle of inc-`) {
		t.Errorf("no error logged for the failed drill:\n%s", logs.String())
	}
}

// syncWriter serializes writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
