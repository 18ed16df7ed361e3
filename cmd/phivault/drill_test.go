package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/phivault/phivault/drill"
)

// TestDrillLive plays drills against an in-process vault as against a live
// server: a non-drill account is refused before any request, a drill
// suspends the drill account and the account is active again after it
// (its incident closed), so the next drill signs in again; the scenarios
// that would harm a live server are skipped.
func TestDrillLive(t *testing.T) {
	ctx := context.Background()
	target, stop, err := openDrillVault(ctx, t.TempDir(), 1)
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

	for _, name := range []string{"bulk-export", "mass-update", "stolen-credentials"} {
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
