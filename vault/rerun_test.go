package vault_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/vault"
)

// rerunStore runs every Update function twice: first in a transaction it
// rolls back, then for real, as a store may when it retries a group commit.
// If between is set, it runs once between the two runs, so that the second
// run sees another writer's commit, as a retried group commit may.
type rerunStore struct {
	phivault.Store
	between func()
}

var errAgain = errors.New("run it again")

func (s *rerunStore) Update(ctx context.Context, fn func(phivault.StoreTx) error) error {
	err := s.Store.Update(ctx, func(tx phivault.StoreTx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return errAgain
	})
	if !errors.Is(err, errAgain) {
		return err
	}
	if between := s.between; between != nil {
		s.between = nil
		between()
	}
	return s.Store.Update(ctx, fn)
}

func openRerun(t *testing.T) (*vault.Service, *rerunStore) {
	rs := new(rerunStore)
	s, _ := mustOpenService(t, func(st phivault.Store) phivault.Store { rs.Store = st; return rs })
	return s, rs
}

// TestService_RerunSeesNewMatch retries a transaction after another writer
// created the Patient its ifNoneExist looks for: the retry must use that
// Patient, both for the entry and for the references to it, and create no
// second one.
func TestService_RerunSeesNewMatch(t *testing.T) {
	ctx := context.Background()
	s, rs := openRerun(t)
	var existing *phivault.Resource
	rs.between = func() {
		existing = mustCreate(t, s, "Patient", `{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"R2"}]}`)
	}
	bundle := `{"resourceType":"Bundle","type":"transaction","entry":[
	 {"fullUrl":"urn:uuid:22222222-2222-4222-8222-222222222222","resource":{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"R2"}]},
	  "request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:mrn|R2"}},
	 {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},
	   "subject":{"reference":"urn:uuid:22222222-2222-4222-8222-222222222222"}},
	  "request":{"method":"POST","url":"Observation"}}]}`
	res, err := s.Bundle(ctx, []byte(bundle), "")
	if err != nil {
		t.Fatal(err)
	}
	if existing == nil {
		t.Fatal("the store did not run the transaction twice")
	}
	var out struct {
		Entry []struct {
			Response struct{ Location, Status string }
		}
	}
	if err := json.Unmarshal(res.Body, &out); err != nil {
		t.Fatal(err)
	}
	if loc := out.Entry[0].Response.Location; !strings.HasPrefix(loc, "Patient/"+existing.ID+"/") {
		t.Errorf("Patient entry location = %s; want the existing Patient/%s", loc, existing.ID)
	}
	obs, _, _ := strings.Cut(out.Entry[1].Response.Location, "/_history")
	got, err := s.Read(ctx, "Observation", strings.TrimPrefix(obs, "Observation/"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `"reference":"Patient/` + existing.ID + `"`; !strings.Contains(string(got.Body), want) {
		t.Errorf("Observation = %s; want it to reference %s", got.Body, want)
	}
	q := mustQuery(t, "Patient", "identifier=urn:mrn|R2")
	if res, err := s.Search(ctx, q); err != nil || res.Total != 1 {
		t.Fatalf("patients with R2 = %+v, %v; want exactly 1", res, err)
	}
}

// TestService_Rerun checks that the vault's write functions give the same
// result when the store runs them twice.
func TestService_Rerun(t *testing.T) {
	ctx := context.Background()
	s, _ := openRerun(t)
	mustCreate(t, s, "Practitioner", `{"resourceType":"Practitioner","identifier":[{"system":"urn:npi","value":"999"}]}`)
	bundle := `{"resourceType":"Bundle","type":"transaction","entry":[
	 {"fullUrl":"urn:uuid:11111111-1111-4111-8111-111111111111","resource":{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"R1"}]},
	  "request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:mrn|R1"}},
	 {"resource":{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},
	   "subject":{"reference":"urn:uuid:11111111-1111-4111-8111-111111111111"},
	   "participant":[{"individual":{"reference":"Practitioner?identifier=urn:npi|999"}}]},
	  "request":{"method":"POST","url":"Encounter"}}]}`
	for range 2 { // the second time, ifNoneExist matches the first run's Patient
		res, err := s.Bundle(ctx, []byte(bundle), "")
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Entry []struct{ Response struct{ Location string } }
		}
		if err := json.Unmarshal(res.Body, &out); err != nil {
			t.Fatal(err)
		}
		patient, _, _ := strings.Cut(out.Entry[0].Response.Location, "/_history")
		enc, _, _ := strings.Cut(out.Entry[1].Response.Location, "/_history")
		got, err := s.Read(ctx, "Encounter", strings.TrimPrefix(enc, "Encounter/"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(got.Body), `"reference":"`+patient+`"`) || !strings.Contains(string(got.Body), `"reference":"Practitioner/`) {
			t.Fatalf("Encounter references not rewritten to %s: %s", patient, got.Body)
		}
	}
	q := mustQuery(t, "Patient", "identifier=urn:mrn|R1")
	if res, err := s.Search(ctx, q); err != nil || res.Total != 1 {
		t.Fatalf("patients with R1 = %+v, %v; want exactly 1", res, err)
	}
	p := mustCreate(t, s, "Patient", `{"resourceType":"Patient","active":true}`)
	if _, created, err := s.Create(ctx, "Patient", []byte(`{"resourceType":"Patient"}`), phivault.CreateOptions{IfNoneExist: "_id=" + p.ID}); err != nil || created {
		t.Fatalf("conditional Create = %v, %v; want the existing one", created, err)
	}
}
