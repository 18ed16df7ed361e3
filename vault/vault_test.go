package vault_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/internal/vaulttest"
	"github.com/phivault/phivault/sqlite"
	"github.com/phivault/phivault/vault"
)

// MustOpenService returns a Service over a fresh SQLite database in a temp
// folder, sealing with a file keyring: the real stack, minus HTTP.
func MustOpenService(tb testing.TB) (*vault.Service, *sqlite.DB) {
	tb.Helper()
	return mustOpenService(tb, func(s phivault.Store) phivault.Store { return s })
}

func mustOpenService(tb testing.TB, wrap func(phivault.Store) phivault.Store) (*vault.Service, *sqlite.DB) {
	tb.Helper()
	dir := tb.TempDir()
	keys, _ := vaulttest.Keyring(tb, dir)
	db, _ := vaulttest.SQLite(tb, dir)
	return vault.New(wrap(db), vaulttest.Sealer(tb, db, keys, envelope.Options{})), db
}

func mustCreate(tb testing.TB, s *vault.Service, typ, body string) *phivault.Resource {
	tb.Helper()
	res, created, err := s.Create(context.Background(), typ, []byte(body), phivault.CreateOptions{})
	if err != nil {
		tb.Fatalf("Create(%s) = %v", typ, err)
	}
	if !created {
		tb.Fatalf("Create(%s) created = false", typ)
	}
	return res
}

func decode(tb testing.TB, b []byte) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

func wantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := phivault.ErrorCode(err); got != code {
		tb.Fatalf("error = %v (code %q), want code %q", err, got, code)
	}
}

const patientJSON = `{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"%s"}],"name":[{"family":"%s","given":["Ann"]}],"gender":"female","birthDate":"%s"}`

func TestService_CRUD(t *testing.T) {
	ctx := context.Background()
	s, _ := MustOpenService(t)
	p := mustCreate(t, s, "Patient", fmt.Sprintf(patientJSON, "M1", "Zyx", "1980-02-03"))
	if p.Version != 1 || p.Compartment != p.ID {
		t.Fatalf("created %+v", p)
	}
	t.Run("Read", func(t *testing.T) {
		got, err := s.Read(ctx, "Patient", p.ID)
		if err != nil {
			t.Fatal(err)
		}
		m := decode(t, got.Body)
		if m["id"] != p.ID || m["meta"].(map[string]any)["versionId"] != "1" || m["birthDate"] != "1980-02-03" {
			t.Fatalf("Read body = %s", got.Body)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		_, err := s.Read(ctx, "Patient", "no-such-id")
		wantCode(t, err, phivault.ENOTFOUND)
	})
	t.Run("UpdateIfMatch", func(t *testing.T) {
		body := fmt.Sprintf(`{"resourceType":"Patient","id":%q,"gender":"male"}`, p.ID)
		res, created, err := s.Update(ctx, "Patient", p.ID, []byte(body), phivault.UpdateOptions{IfMatch: 1})
		if err != nil || created || res.Version != 2 {
			t.Fatalf("Update = %v, %v, %v", res, created, err)
		}
		_, _, err = s.Update(ctx, "Patient", p.ID, []byte(body), phivault.UpdateOptions{IfMatch: 1})
		wantCode(t, err, phivault.EPRECONDITION)
		old, err := s.VRead(ctx, "Patient", p.ID, 1)
		if err != nil || decode(t, old.Body)["birthDate"] != "1980-02-03" {
			t.Fatalf("VRead(1) = %v", err)
		}
	})
	t.Run("UpdateIDMismatch", func(t *testing.T) {
		_, _, err := s.Update(ctx, "Patient", p.ID, []byte(`{"resourceType":"Patient","id":"other"}`), phivault.UpdateOptions{})
		wantCode(t, err, phivault.EINVALID)
	})
	t.Run("UpdateAsCreate", func(t *testing.T) {
		_, created, err := s.Update(ctx, "Patient", "client-id-1", []byte(`{"resourceType":"Patient","id":"client-id-1"}`), phivault.UpdateOptions{})
		if err != nil || !created {
			t.Fatalf("Update = %v, %v", created, err)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		if err := s.Delete(ctx, "Patient", p.ID); err != nil {
			t.Fatal(err)
		}
		_, err := s.Read(ctx, "Patient", p.ID)
		wantCode(t, err, phivault.EGONE)
		h, err := s.History(ctx, phivault.HistoryQuery{Type: "Patient", ID: p.ID})
		if err != nil || h.Total != 3 || !h.Versions[0].Deleted || h.Versions[2].Version != 1 {
			t.Fatalf("History = %+v, %v", h, err)
		}
		res, err := s.Search(ctx, mustQuery(t, "Patient", "identifier=urn:mrn|M1"))
		if err != nil || res.Total != 0 {
			t.Fatalf("deleted patient still found: %+v, %v", res, err)
		}
	})
	t.Run("Invalid", func(t *testing.T) {
		_, _, err := s.Create(ctx, "Patient", []byte(`{"resourceType":"Patient","birthDate":"03/02/1980"}`), phivault.CreateOptions{})
		wantCode(t, err, phivault.EUNPROCESSABLE)
		var pe *phivault.Error
		if !errors.As(err, &pe) || len(pe.Issues) == 0 || len(pe.Issues[0].Expression) == 0 || pe.Issues[0].Expression[0] != "Patient.birthDate" {
			t.Fatalf("issues = %+v", pe)
		}
		_, _, err = s.Create(ctx, "Observation", []byte(`{"resourceType":"Patient"}`), phivault.CreateOptions{})
		wantCode(t, err, phivault.EINVALID)
	})
}

func mustQuery(tb testing.TB, typ, raw string) *phivault.Query {
	tb.Helper()
	v, err := url.ParseQuery(raw)
	if err != nil {
		tb.Fatal(err)
	}
	q, err := fhir.ParseQuery(typ, v, false)
	if err != nil {
		tb.Fatalf("ParseQuery(%q) = %v", raw, err)
	}
	return q
}

func TestService_Search(t *testing.T) {
	ctx := context.Background()
	s, _ := MustOpenService(t)
	var ids []string
	for i, born := range []string{"1950-01-01", "1960-06-15", "1970-12-31", "1980-03-03"} {
		ids = append(ids, mustCreate(t, s, "Patient", fmt.Sprintf(patientJSON, fmt.Sprint("MRN", i), "Quux", born)).ID)
	}
	mustCreate(t, s, "Patient", fmt.Sprintf(patientJSON, "OTHER", "Other", "1960-06-15"))
	for i := range 3 {
		mustCreate(t, s, "Observation", fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/%s"},"effectiveDateTime":"202%d-01-01T00:00:00Z"}`, ids[0], i))
	}
	tests := []struct {
		query string
		total int
	}{
		{"family=quux", 4},
		{"family=QUUX&given=ann", 4},
		{"identifier=urn:mrn|MRN2", 1},
		{"identifier=MRN2", 1},
		{"birthdate=1960-06-15", 2},
		{"family=quux&birthdate=ge1960-06-15", 3},
		{"family=quux&birthdate=lt1960", 1},
		{"_id=" + ids[1] + "," + ids[2], 2},
		{"family=nobody", 0},
		{"family=quux&identifier=MRN2", 1},
		{"identifier=MRN2&family=other", 0},
		{"family=other&identifier=MRN2,OTHER&birthdate=1960-06-15", 1},
	}
	for _, tt := range tests {
		res, err := s.Search(ctx, mustQuery(t, "Patient", tt.query))
		if err != nil {
			t.Fatalf("Search(%s) = %v", tt.query, err)
		}
		if res.Total != tt.total || len(res.Matches) != tt.total {
			t.Errorf("Search(%s) total = %d (%d matches), want %d", tt.query, res.Total, len(res.Matches), tt.total)
		}
	}
	t.Run("Observation", func(t *testing.T) {
		res, err := s.Search(ctx, mustQuery(t, "Observation", "patient="+ids[0]+"&code=http://loinc.org|8867-4&date=ge2021&_include=Observation:patient"))
		if err != nil || res.Total != 2 || len(res.Included) != 1 || res.Included[0].ID != ids[0] {
			t.Fatalf("Search = %+v, %v", res, err)
		}
		// A reference group moves to the front of the store's filter.
		for patient, want := range map[string]int{ids[0]: 3, ids[1]: 0} {
			q := "code=http://loinc.org|8867-4&patient=" + patient
			res, err := s.Search(ctx, mustQuery(t, "Observation", q))
			if err != nil || res.Total != want {
				t.Fatalf("Search(%s) = %+v, %v; want %d", q, res, err, want)
			}
		}
	})
	t.Run("Paging", func(t *testing.T) {
		q := mustQuery(t, "Patient", "family=quux&_count=3&_sort=_lastUpdated")
		res, err := s.Search(ctx, q)
		if err != nil || res.Total != 4 || len(res.Matches) != 3 || res.Matches[0].ID != ids[0] {
			t.Fatalf("page 1 = %+v, %v", res, err)
		}
		q.Offset = 3
		res, err = s.Search(ctx, q)
		if err != nil || len(res.Matches) != 1 || res.Matches[0].ID != ids[3] {
			t.Fatalf("page 2 = %+v, %v", res, err)
		}
	})
	t.Run("SummaryCount", func(t *testing.T) {
		res, err := s.Search(ctx, mustQuery(t, "Patient", "family=quux&_summary=count"))
		if err != nil || res.Total != 4 || len(res.Matches) != 0 {
			t.Fatalf("Search = %+v, %v", res, err)
		}
	})
	t.Run("ErrUnbounded", func(t *testing.T) {
		_, err := s.Search(ctx, mustQuery(t, "Patient", "birthdate=ge1960"))
		wantCode(t, err, phivault.EINVALID)
		_, err = s.Search(ctx, mustQuery(t, "Observation", "date=ge2021"))
		wantCode(t, err, phivault.EINVALID)
	})
	t.Run("ConditionalCreate", func(t *testing.T) {
		res, created, err := s.Create(ctx, "Patient", []byte(fmt.Sprintf(patientJSON, "MRN1", "Quux", "1960-06-15")), phivault.CreateOptions{IfNoneExist: "identifier=urn:mrn|MRN1"})
		if err != nil || created || res.ID != ids[1] {
			t.Fatalf("Create = %v, %v, %v", res, created, err)
		}
		_, _, err = s.Create(ctx, "Patient", []byte(`{"resourceType":"Patient"}`), phivault.CreateOptions{IfNoneExist: "family=quux"})
		wantCode(t, err, phivault.EPRECONDITION)
	})
	t.Run("Everything", func(t *testing.T) {
		res, err := s.Everything(ctx, ids[0], 0, 0)
		if err != nil || res.Total != 4 {
			t.Fatalf("Everything = %+v, %v", res, err)
		}
	})
}

// careTeamJSON is a CareTeam for a patient (%s) with one participant
// member (%s, a JSON Reference).
const careTeamJSON = `{"resourceType":"CareTeam","status":"active","subject":{"reference":"Patient/%s"},"participant":[{"member":%s}]}`

// principalRef is a reference by identifier to phivault principal id.
func principalRef(id string) string {
	return `{"identifier":{"system":"urn:phivault:principal","value":"` + id + `"}}`
}

func TestService_SearchByIdentifier(t *testing.T) {
	ctx := context.Background()
	s, _ := MustOpenService(t)
	p1 := mustCreate(t, s, "Patient", fmt.Sprintf(patientJSON, "MRN1", "Quux", "1950-01-01")).ID
	p2 := mustCreate(t, s, "Patient", fmt.Sprintf(patientJSON, "MRN2", "Quux", "1960-01-01")).ID
	t1 := mustCreate(t, s, "CareTeam", fmt.Sprintf(careTeamJSON, p1, principalRef("acct-1"))).ID
	t2 := mustCreate(t, s, "CareTeam", fmt.Sprintf(careTeamJSON, p2, principalRef("acct-2"))).ID
	t3 := mustCreate(t, s, "CareTeam", fmt.Sprintf(careTeamJSON, p2, `{"reference":"Practitioner/d1"}`)).ID
	e1 := mustCreate(t, s, "Encounter", fmt.Sprintf(`{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/%s"},"participant":[{"individual":%s}]}`, p1, principalRef("acct-1"))).ID
	c1 := mustCreate(t, s, "EpisodeOfCare", fmt.Sprintf(`{"resourceType":"EpisodeOfCare","status":"active","patient":{"reference":"Patient/%s"},"careManager":%s}`, p2, principalRef("acct-1"))).ID
	tests := []struct {
		typ, query string
		want       []string
	}{
		{"CareTeam", "participant:identifier=urn:phivault:principal|acct-1", []string{t1}},
		{"CareTeam", "participant:identifier=urn:phivault:principal|acct-2", []string{t2}},
		{"CareTeam", "participant:identifier=acct-2", []string{t2}},
		{"CareTeam", "participant:identifier=urn:other|acct-1", nil},
		{"CareTeam", "participant:identifier=Practitioner/d1", nil},
		{"CareTeam", "participant=Practitioner/d1", []string{t3}},
		{"CareTeam", "participant:identifier=urn:phivault:principal|&patient=" + p2, []string{t2}},
		{"Encounter", "participant:identifier=urn:phivault:principal|acct-1", []string{e1}},
		{"EpisodeOfCare", "care-manager:identifier=urn:phivault:principal|acct-1", []string{c1}},
	}
	for _, tt := range tests {
		res, err := s.Search(ctx, mustQuery(t, tt.typ, tt.query))
		if err != nil {
			t.Fatalf("Search(%s?%s) = %v", tt.typ, tt.query, err)
		}
		var got []string
		for _, m := range res.Matches {
			got = append(got, m.ID)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Search(%s?%s) = %v, want %v", tt.typ, tt.query, got, tt.want)
		}
	}
	// "system|" alone is not a token lookup: it needs a bound.
	_, err := s.Search(ctx, mustQuery(t, "CareTeam", "participant:identifier=urn:phivault:principal|"))
	wantCode(t, err, phivault.EINVALID)
}

func TestService_ConcurrentIfMatch(t *testing.T) {
	ctx := context.Background()
	s, _ := MustOpenService(t)
	p := mustCreate(t, s, "Patient", `{"resourceType":"Patient","active":true}`)
	const workers, each = 8, 10
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for done := 0; done < each; {
				cur, err := s.Read(ctx, "Patient", p.ID)
				if err != nil {
					t.Error(err)
					return
				}
				m := decode(t, cur.Body)
				n, _ := m["multipleBirthInteger"].(float64)
				m["multipleBirthInteger"] = n + 1
				body, _ := json.Marshal(m)
				_, _, err = s.Update(ctx, "Patient", p.ID, body, phivault.UpdateOptions{IfMatch: cur.Version})
				if phivault.ErrorCode(err) == phivault.EPRECONDITION || phivault.ErrorCode(err) == phivault.ECONFLICT {
					continue
				} else if err != nil {
					t.Error(err)
					return
				}
				done++
			}
		})
	}
	wg.Wait()
	cur, err := s.Read(ctx, "Patient", p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := decode(t, cur.Body)["multipleBirthInteger"]; got != float64(workers*each) || cur.Version != workers*each+1 {
		t.Fatalf("after %d increments: value %v, version %d", workers*each, got, cur.Version)
	}
}
