package vault_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/internal/vaulttest"
	"github.com/phivault/phivault/vault"
)

// openReindex returns a Service over wrap(store), and the store and
// sealer underneath.
func openReindex(tb testing.TB, wrap func(phivault.Store) phivault.Store) (*vault.Service, phivault.Store, *envelope.Sealer) {
	tb.Helper()
	dir := tb.TempDir()
	keys, _ := vaulttest.Keyring(tb, dir)
	db, _ := vaulttest.SQLite(tb, dir)
	sealer := vaulttest.Sealer(tb, db, keys, envelope.Options{})
	return vault.New(wrap(db), sealer), db, sealer
}

// addedByReindex reports whether v is an index value that phivault did not
// write before migration 0009_reindex: an identifier in a reference, or a
// care-team parameter.
func addedByReindex(v phivault.IndexValue) bool {
	return strings.Contains(v.Param, ":") || slices.Contains([]string{"CareTeam.participant",
		"Encounter.participant", "EpisodeOfCare.care-manager"}, v.Param)
}

// makeStale gives the current version of typ/id the tokens an older
// phivault wrote, as if it had been stored before the reindex migration.
func makeStale(tb testing.TB, store phivault.Store, sealer *envelope.Sealer, typ, id string) {
	tb.Helper()
	ctx := context.Background()
	err := store.Update(ctx, func(tx phivault.StoreTx) error {
		cur, err := tx.Current(ctx, typ, id)
		if err != nil {
			return err
		}
		res, err := sealer.Open(ctx, tx, cur)
		if err != nil {
			return err
		}
		obj, err := fhir.Decode(res.Body)
		if err != nil {
			return err
		}
		values := slices.DeleteFunc(fhir.IndexValues(typ, obj), addedByReindex)
		tokens, err := sealer.Tokens(ctx, tx, values)
		if err != nil {
			return err
		}
		return tx.Retoken(ctx, typ, id, cur.Version, tokens)
	})
	if err != nil {
		tb.Fatalf("makeStale(%s/%s) = %v", typ, id, err)
	}
}

// searchIDs returns the ids a search finds.
func searchIDs(tb testing.TB, s *vault.Service, typ, query string) []string {
	tb.Helper()
	res, err := s.Search(context.Background(), mustQuery(tb, typ, query))
	if err != nil {
		tb.Fatalf("Search(%s?%s) = %v", typ, query, err)
	}
	ids := []string{}
	for _, m := range res.Matches {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	return ids
}

func pending(tb testing.TB, store phivault.Store) []string {
	tb.Helper()
	var types []string
	err := store.View(context.Background(), func(tx phivault.StoreTx) (err error) {
		types, err = tx.ReindexPending(context.Background())
		return err
	})
	if err != nil {
		tb.Fatalf("ReindexPending() = %v", err)
	}
	return types
}

// TestService_Reindex writes care-team resources, gives them the tokens
// of a phivault from before :identifier, and checks that Reindex makes
// them searchable by identifier, page by page, while the store runs every
// transaction twice.
func TestService_Reindex(t *testing.T) {
	ctx := context.Background()
	s, store, sealer := openReindex(t, func(st phivault.Store) phivault.Store { return &rerunStore{Store: st} })
	s.ReindexPage = 2
	p1 := mustCreate(t, s, "Patient", fmt.Sprintf(patientJSON, "MRN1", "Quux", "1950-01-01")).ID
	p2 := mustCreate(t, s, "Patient", fmt.Sprintf(patientJSON, "MRN2", "Quux", "1960-01-01")).ID
	p3 := mustCreate(t, s, "Patient", fmt.Sprintf(patientJSON, "MRN3", "Quux", "1970-01-01")).ID
	// Four teams written at one instant, as by one Bundle, fill more
	// than a page.
	instant := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	s.Now = func() time.Time { return instant }
	team := mustCreate(t, s, "CareTeam", fmt.Sprintf(careTeamJSON, p1, principalRef("acct-1"))).ID
	var others []string
	for range 3 {
		others = append(others, mustCreate(t, s, "CareTeam", fmt.Sprintf(careTeamJSON, p2, principalRef("acct-2"))).ID)
	}
	slices.Sort(others)
	s.Now = time.Now
	enc := mustCreate(t, s, "Encounter", fmt.Sprintf(`{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/%s"},"participant":[{"individual":%s}]}`, p1, principalRef("acct-1"))).ID
	episode := mustCreate(t, s, "EpisodeOfCare", fmt.Sprintf(`{"resourceType":"EpisodeOfCare","status":"active","patient":{"reference":"Patient/%s"},"careManager":%s}`, p2, principalRef("acct-1"))).ID
	for _, r := range append([]string{"CareTeam/" + team, "Encounter/" + enc, "EpisodeOfCare/" + episode}, prefixed("CareTeam/", others)...) {
		typ, id, _ := strings.Cut(r, "/")
		makeStale(t, store, sealer, typ, id)
	}
	// A deleted team and a shredded patient's team keep no tokens.
	deleted := mustCreate(t, s, "CareTeam", fmt.Sprintf(careTeamJSON, p1, principalRef("acct-1"))).ID
	if err := s.Delete(ctx, "CareTeam", deleted); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "CareTeam", fmt.Sprintf(careTeamJSON, p3, principalRef("acct-1")))
	if _, err := s.Shred(ctx, p3); err != nil {
		t.Fatal(err)
	}

	byAcct1 := "participant:identifier=urn:phivault:principal|acct-1"
	if got := searchIDs(t, s, "CareTeam", byAcct1); len(got) != 0 {
		t.Fatalf("before Reindex, Search(CareTeam?%s) = %v, want none: the tokens are not stale", byAcct1, got)
	}
	n, err := s.Reindex(ctx)
	if err != nil || n != 6 {
		t.Fatalf("Reindex() = %d, %v; want 6", n, err)
	}
	for _, tt := range []struct {
		typ, query string
		want       []string
	}{
		{"CareTeam", byAcct1, []string{team}},
		{"CareTeam", "participant:identifier=acct-2", others},
		{"Encounter", byAcct1, []string{enc}},
		{"EpisodeOfCare", "care-manager:identifier=urn:phivault:principal|acct-1", []string{episode}},
		{"CareTeam", "patient=" + p1, []string{team}}, // the tokens from before are still there
	} {
		if got := searchIDs(t, s, tt.typ, tt.query); !slices.Equal(got, tt.want) {
			t.Errorf("after Reindex, Search(%s?%s) = %v, want %v", tt.typ, tt.query, got, tt.want)
		}
	}
	if got := pending(t, store); len(got) != 0 {
		t.Errorf("ReindexPending() after Reindex = %q, want none", got)
	}
	if n, err := s.Reindex(ctx); n != 0 || err != nil {
		t.Errorf("second Reindex() = %d, %v; want 0, nil", n, err)
	}
}

func prefixed(prefix string, ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = prefix + id
	}
	return out
}

// failingStore fails its failAt-th Update (counting from 1).
type failingStore struct {
	phivault.Store
	updates, failAt int
}

var errFailed = errors.New("store failed")

func (s *failingStore) Update(ctx context.Context, fn func(phivault.StoreTx) error) error {
	if s.updates++; s.updates == s.failAt {
		return errFailed
	}
	return s.Store.Update(ctx, fn)
}

// TestService_Reindex_Resume checks that a Reindex cut short leaves its
// type pending and that the next one finishes it.
func TestService_Reindex_Resume(t *testing.T) {
	ctx := context.Background()
	fs := new(failingStore)
	s, store, sealer := openReindex(t, func(st phivault.Store) phivault.Store { fs.Store = st; return fs })
	s.ReindexPage = 1
	p := mustCreate(t, s, "Patient", fmt.Sprintf(patientJSON, "MRN1", "Quux", "1950-01-01")).ID
	var teams []string
	for i := range 3 {
		teams = append(teams, mustCreate(t, s, "CareTeam", fmt.Sprintf(careTeamJSON, p, principalRef(fmt.Sprint("acct-", i)))).ID)
		makeStale(t, store, sealer, "CareTeam", teams[i])
	}
	fs.updates, fs.failAt = 0, 2 // the second page
	if n, err := s.Reindex(ctx); !errors.Is(err, errFailed) || n != 1 {
		t.Fatalf("Reindex() = %d, %v; want 1, the store's error", n, err)
	}
	if got := pending(t, store); !slices.Contains(got, "CareTeam") {
		t.Fatalf("ReindexPending() after a failed Reindex = %q, want CareTeam", got)
	}
	fs.failAt = 0
	if n, err := s.Reindex(ctx); err != nil || n != 3 {
		t.Fatalf("Reindex() again = %d, %v; want 3", n, err)
	}
	for i, id := range teams {
		q := fmt.Sprint("participant:identifier=urn:phivault:principal|acct-", i)
		if got := searchIDs(t, s, "CareTeam", q); !slices.Equal(got, []string{id}) {
			t.Errorf("Search(CareTeam?%s) = %v, want [%s]", q, got, id)
		}
	}
}
