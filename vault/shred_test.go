package vault_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/internal/testenv"
	"github.com/phivault/phivault/internal/vaulttest"
	"github.com/phivault/phivault/vault"
)

// keyOverride is a StoreTx whose Key(id) returns k: it lets a Sealer try a
// chosen stored key on a compartment's ciphertext.
type keyOverride struct {
	phivault.StoreTx
	id string
	k  *phivault.WrappedKey
}

func (o keyOverride) Key(ctx context.Context, id string) (*phivault.WrappedKey, error) {
	if id == o.id {
		return &phivault.WrappedKey{ID: id, KEKID: o.k.KEKID, Wrapped: o.k.Wrapped, Created: o.k.Created, Bound: o.k.Bound}, nil
	}
	return o.StoreTx.Key(ctx, id)
}

// importedPatient is one Synthea patient as imported: its Patient id and
// every resource (Type/id) its transaction created.
type importedPatient struct {
	id   string
	refs []string
}

func importSynthea(t *testing.T, s *vault.Service, n int) []importedPatient {
	t.Helper()
	var out []importedPatient
	testenv.SyntheaBundles(t, "patients-100.tar.gz", func(name string, data []byte) {
		if len(out) == n {
			return
		}
		res, err := s.Bundle(context.Background(), data, "https://example.test/fhir")
		if err != nil {
			t.Fatalf("%s: Bundle = %v", name, err)
		}
		var got struct {
			Entry []struct {
				Response struct {
					Location string `json:"location"`
				} `json:"response"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(res.Body, &got); err != nil {
			t.Fatal(err)
		}
		var p importedPatient
		for _, e := range got.Entry {
			ref, _, _ := strings.Cut(e.Response.Location, "/_history/")
			p.refs = append(p.refs, ref)
			if id, ok := strings.CutPrefix(ref, "Patient/"); ok {
				p.id = id
			}
		}
		out = append(out, p)
	})
	return out
}

func wantShredded(t *testing.T, what string, err error) {
	t.Helper()
	if phivault.ErrorCode(err) != phivault.EGONE || !strings.Contains(phivault.ErrorMessage(err), "erased (crypto-shredded)") {
		t.Fatalf("%s = %v, want EGONE saying the records were erased", what, err)
	}
}

// TestService_Shred imports Synthea patients into the real stack (SQLite
// store, file keyring), shreds one, and proves the shred: every version and
// history entry of that patient reads as erased, the others are unaffected,
// writes into the compartment are refused with nothing written, and in the
// database every ciphertext of the compartment remains while no stored key
// opens any of them and no token of the compartment is left.
func TestService_Shred(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keys, _ := vaulttest.Keyring(t, dir)
	db, dbPath := vaulttest.SQLite(t, dir)
	s := vault.New(db, vaulttest.Sealer(t, db, keys, envelope.Options{}))

	patients := importSynthea(t, s, 3)
	victim, other := patients[1], patients[0]
	if victim.id == "" || other.id == "" {
		t.Fatal("a bundle had no Patient")
	}
	// Give the victim more history: update one resource, delete another.
	var obsID string
	for _, ref := range victim.refs {
		if id, ok := strings.CutPrefix(ref, "Observation/"); ok {
			obsID = id
			break
		}
	}
	obs, err := s.Read(ctx, "Observation", obsID)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Update(ctx, "Observation", obsID, obs.Body, phivault.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "Observation", obsID); err != nil {
		t.Fatal(err)
	}
	otherBefore, err := s.Everything(ctx, other.id, vault.MaxCount, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The victim's compartment, before the shred (a bundle also creates
	// Organizations and Practitioners, which are in no compartment).
	var mine []string
	for _, ref := range victim.refs {
		typ, id, _ := strings.Cut(ref, "/")
		r, err := s.Read(ctx, typ, id)
		if phivault.ErrorCode(err) == phivault.EGONE {
			mine = append(mine, ref) // the deleted Observation
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		if r.Compartment == victim.id {
			mine = append(mine, ref)
		}
	}
	victim.refs = mine
	before, err := s.Everything(ctx, victim.id, vault.MaxCount, 0)
	if err != nil || before.Total == 0 {
		t.Fatalf("Everything(victim) = %v, %v", before, err)
	}

	// Shred only removes a patient that exists.
	if _, err := s.Shred(ctx, "no-such-patient"); phivault.ErrorCode(err) != phivault.ENOTFOUND {
		t.Errorf("Shred(unknown) = %v, want ENOTFOUND", err)
	}
	at, err := s.Shred(ctx, victim.id)
	if err != nil {
		t.Fatalf("Shred = %v", err)
	}
	if again, err := s.Shred(ctx, victim.id); err != nil || !again.Equal(at) {
		t.Errorf("Shred again = %v, %v; want the first time %v", again, err, at)
	}

	// Reads: every version and history entry of the victim is erased.
	versions := map[string]int64{} // Type/id -> newest version
	for _, ref := range victim.refs {
		typ, id, _ := strings.Cut(ref, "/")
		_, err := s.Read(ctx, typ, id)
		wantShredded(t, "Read("+ref+")", err)
		_, err = s.History(ctx, phivault.HistoryQuery{Type: typ, ID: id})
		wantShredded(t, "History("+ref+")", err)
		n := int64(1)
		if id == obsID {
			n = 3
		}
		versions[ref] = n
		for v := int64(1); v <= n; v++ {
			_, err := s.VRead(ctx, typ, id, v)
			wantShredded(t, fmt.Sprintf("VRead(%s, %d)", ref, v), err)
		}
	}
	_, err = s.Everything(ctx, victim.id, 0, 0)
	wantShredded(t, "Everything(victim)", err)
	for _, q := range []string{"subject=Patient/" + victim.id, "patient=" + victim.id, "_id=" + obsID} {
		res := mustSearch(t, s, "Observation", q)
		if res.Total != 0 || len(res.Matches) != 0 {
			t.Errorf("Search(Observation?%s) after shred = %d matches", q, res.Total)
		}
	}
	if res := mustSearch(t, s, "Patient", "_id="+victim.id); res.Total != 0 {
		t.Errorf("Search(Patient?_id=victim) after shred = %d matches", res.Total)
	}
	hist, err := s.History(ctx, phivault.HistoryQuery{Type: "Patient", Count: vault.MaxCount})
	if err != nil {
		t.Fatalf("type history = %v", err)
	}
	for _, v := range hist.Versions {
		if v.ID == victim.id {
			t.Error("type-level history lists the shredded Patient")
		}
	}
	if hist.Total != len(patients)-1 {
		t.Errorf("type-level history total = %d, want %d", hist.Total, len(patients)-1)
	}

	// Other patients are unaffected.
	otherAfter, err := s.Everything(ctx, other.id, vault.MaxCount, 0)
	if err != nil || otherAfter.Total != otherBefore.Total {
		t.Fatalf("Everything(other) after shred = %v, %v; want %d resources", otherAfter, err, otherBefore.Total)
	}
	if _, err := s.Read(ctx, "Patient", other.id); err != nil {
		t.Errorf("Read(other Patient) = %v", err)
	}

	// Writes into the compartment are refused and write nothing.
	countVersions := func() int {
		t.Helper()
		n := 0
		for ref := range versions {
			typ, id, _ := strings.Cut(ref, "/")
			err := db.View(ctx, func(tx phivault.StoreTx) error {
				_, total, err := tx.History(ctx, phivault.HistoryFilter{Type: typ, ID: id})
				n += total
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		return n
	}
	stored := countVersions()
	patientBody := fmt.Sprintf(`{"resourceType":"Patient","id":%q,"active":true}`, victim.id)
	_, _, err = s.Update(ctx, "Patient", victim.id, []byte(patientBody), phivault.UpdateOptions{})
	wantShredded(t, "Update(Patient/victim)", err)
	obsBody := fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/%s"}}`, victim.id)
	_, _, err = s.Create(ctx, "Observation", []byte(obsBody), phivault.CreateOptions{})
	wantShredded(t, "Create(Observation of victim)", err)
	var victimObs string
	for _, ref := range victim.refs {
		if id, ok := strings.CutPrefix(ref, "Observation/"); ok && id != obsID {
			victimObs = id
			break
		}
	}
	moved := fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","code":{"text":"x"},"subject":{"reference":"Patient/%s"}}`, victimObs, other.id)
	_, _, err = s.Update(ctx, "Observation", victimObs, []byte(moved), phivault.UpdateOptions{})
	wantShredded(t, "Update(victim's Observation into another compartment)", err)
	err = s.Delete(ctx, "Observation", victimObs)
	wantShredded(t, "Delete(victim's Observation)", err)
	tx := fmt.Sprintf(`{"resourceType":"Bundle","type":"transaction","entry":[
		{"fullUrl":"urn:uuid:a","resource":{"resourceType":"Organization","name":"X"},"request":{"method":"POST","url":"Organization"}},
		{"resource":%s,"request":{"method":"PUT","url":"Patient/%s"}}]}`, patientBody, victim.id)
	_, err = s.Bundle(ctx, []byte(tx), "https://example.test/fhir")
	wantShredded(t, "transaction into the victim's compartment", err)
	if got := countVersions(); got != stored {
		t.Errorf("refused writes stored versions: %d, want %d", got, stored)
	}
	if res := mustSearch(t, s, "Organization", "name=X"); res.Total != 0 {
		t.Errorf("the refused transaction wrote its Organization")
	}

	// The database: ciphertext stays, keys and tokens are gone.
	fresh := envelope.New(keys, envelope.Options{CacheSize: -1})
	err = db.View(ctx, func(tx phivault.StoreTx) error {
		if _, err := tx.Key(ctx, "patient/"+victim.id); !errors.Is(err, phivault.ErrNotFound) {
			t.Errorf("victim's key row after shred: %v, want ErrNotFound", err)
		}
		all, err := tx.Keys(ctx, phivault.KeyFilter{})
		if err != nil {
			return err
		}
		if len(all) != len(patients)-1+2 { // the others, shared, index
			t.Errorf("%d keys remain, want %d", len(all), len(patients)+1)
		}
		opened := 0
		for ref, n := range versions {
			typ, id, _ := strings.Cut(ref, "/")
			for v := int64(1); v <= n; v++ {
				sr, err := tx.Version(ctx, typ, id, v)
				if err != nil {
					return err
				}
				if sr.Deleted {
					continue
				}
				if len(sr.Ciphertext) == 0 || sr.Compartment != victim.id {
					t.Fatalf("%s/%d: ciphertext %d bytes, compartment %q", ref, v, len(sr.Ciphertext), sr.Compartment)
				}
				if _, err := fresh.Open(ctx, tx, sr); err == nil {
					t.Fatalf("%s/%d opened after the shred", ref, v)
				}
				for _, k := range all {
					_, err := fresh.Open(ctx, keyOverride{tx, sr.KeyID, k}, sr)
					if err == nil {
						t.Fatalf("%s/%d opens with stored key %s", ref, v, k.ID)
					} else if phivault.ErrorCode(err) != phivault.EINTEGRITY {
						t.Fatalf("%s/%d with stored key %s: %v, want an integrity failure", ref, v, k.ID, err)
					}
					opened++
				}
			}
		}
		t.Logf("%d resources of the shredded compartment; %d decryption attempts with the %d remaining keys, all failed", len(versions), opened, len(all))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var cts, toks, keyRows int
	q := func(dst *int, query string, args ...any) {
		t.Helper()
		if err := raw.QueryRow(query, args...).Scan(dst); err != nil {
			t.Fatal(err)
		}
	}
	q(&cts, `SELECT count(*) FROM versions WHERE compartment = ? AND ciphertext IS NOT NULL AND length(ciphertext) > 0`, victim.id)
	q(&keyRows, `SELECT count(*) FROM keys WHERE id = ?`, "patient/"+victim.id)
	q(&toks, `SELECT count(*) FROM tokens t JOIN versions v ON v.type = t.type AND v.id = t.id WHERE v.compartment = ?`, victim.id)
	if cts < len(versions) || keyRows != 0 || toks != 0 {
		t.Errorf("database after shred: %d ciphertexts (want >= %d), %d key rows (want 0), %d tokens (want 0)", cts, len(versions), keyRows, toks)
	}
	var otherToks int
	q(&otherToks, `SELECT count(*) FROM tokens t JOIN versions v ON v.type = t.type AND v.id = t.id WHERE v.compartment = ?`, other.id)
	if otherToks == 0 {
		t.Error("the other patient's tokens are gone too")
	}
}

func mustSearch(t *testing.T, s *vault.Service, typ, rawQuery string) *phivault.SearchResult {
	t.Helper()
	q := mustQuery(t, typ, rawQuery)
	res, err := s.Search(context.Background(), q)
	if err != nil {
		t.Fatalf("Search(%s?%s) = %v", typ, rawQuery, err)
	}
	return res
}

// oneKey is a StoreTx that has exactly one key, k: an attacker's candidate
// for the DEK of the row being opened.
type oneKey struct {
	phivault.StoreTx
	k *phivault.WrappedKey
}

func (o oneKey) Key(ctx context.Context, id string) (*phivault.WrappedKey, error) {
	return &phivault.WrappedKey{ID: id, KEKID: o.k.KEKID, Wrapped: o.k.Wrapped, Created: o.k.Created, Bound: o.k.Bound}, nil
}

// dataFolder reads every file under dir (the database, its -wal and -shm,
// the audit file, any journal, the key file).
func dataFolder(tb testing.TB, dir string) map[string][]byte {
	tb.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files[filepath.Base(path)] = b
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return files
}

// TestService_Shred_Forensic shreds a patient through the real stack
// (vault over envelope over SQLite, file keyring) and then acts as an
// attacker who holds the data folder and the keyring with its passphrase:
// it reads every file of the folder, looks for the victim's wrapped DEK
// (captured before the shred) in the raw bytes, and tries every window of
// every file as a wrapped key, with the keyring, on a sealed version of
// the victim. Nothing may be found and nothing may open, neither while the
// server still runs (WAL and shared memory present) nor after it stopped.
func TestService_Shred_Forensic(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keys, _ := vaulttest.Keyring(t, dir)
	db, _ := vaulttest.SQLite(t, dir)
	s := vault.New(db, vaulttest.Sealer(t, db, keys, envelope.Options{}))

	// Enough patients that the key table spans several pages and splits,
	// each with an Observation, in one transaction; the victim's record
	// gets a second version.
	const n = 120
	var entries []string
	for i := range n {
		entries = append(entries, fmt.Sprintf(`{"fullUrl":"urn:uuid:00000000-0000-4000-8000-%012d","resource":{"resourceType":"Patient","active":true},"request":{"method":"POST","url":"Patient"}}`, i),
			fmt.Sprintf(`{"resource":{"resourceType":"Observation","status":"final","code":{"text":"glucose %d"},"subject":{"reference":"urn:uuid:00000000-0000-4000-8000-%012d"}},"request":{"method":"POST","url":"Observation"}}`, i, i))
	}
	body := `{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`
	if _, err := s.Bundle(ctx, []byte(body), "https://example.test/fhir"); err != nil {
		t.Fatal(err)
	}
	var victim string
	if err := db.View(ctx, func(tx phivault.StoreTx) error {
		ps, err := tx.Find(ctx, phivault.ResourceFilter{Types: []string{"Patient"}, Limit: n})
		if err != nil {
			return err
		}
		if len(ps) != n {
			return fmt.Errorf("%d patients stored, want %d", len(ps), n)
		}
		victim = ps[n/2].ID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	p, err := s.Read(ctx, "Patient", victim)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Update(ctx, "Patient", victim, p.Body, phivault.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// What the attacker captured before the shred (an old backup holds
	// it too): the wrapped DEK and a sealed version of the patient.
	var wrapped *phivault.WrappedKey
	var sealed []*phivault.SealedResource
	if err := db.View(ctx, func(tx phivault.StoreTx) error {
		if wrapped, err = tx.Key(ctx, "patient/"+victim); err != nil {
			return err
		}
		for v := int64(1); v <= 2; v++ {
			sr, err := tx.Version(ctx, "Patient", victim, v)
			if err != nil {
				return err
			}
			sealed = append(sealed, sr)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	fresh := envelope.New(keys, envelope.Options{CacheSize: -1})
	// scan acts as the attacker: it reads the data folder, searches it for
	// the captured wrapped DEK, and tries every window of every file as a
	// wrapped key for the victim's compartment (bound to its name, or an
	// unbound wrap of an earlier version) with the keyring, and with every
	// window that unwraps, every captured version. It returns how many
	// windows opened one.
	scan := func(when string) (opened int) {
		t.Helper()
		files := dataFolder(t, dir)
		if name, off, ok := where(files, wrapped.Wrapped); ok && when != "before the shred" {
			t.Errorf("%s: the shredded wrapped DEK is still in %s at offset %d", when, name, off)
		}
		size := len(wrapped.Wrapped)
		for name, b := range files {
			for off := 0; off+size <= len(b); off++ {
				for _, bound := range []bool{true, false} {
					cand := &phivault.WrappedKey{KEKID: wrapped.KEKID, Wrapped: b[off : off+size], Bound: bound}
					keyName := ""
					if bound {
						keyName = wrapped.ID
					}
					dek, err := keys.UnwrapKey(ctx, cand.KEKID, keyName, cand.Wrapped)
					if err != nil {
						continue
					}
					clear(dek)
					for _, sr := range sealed {
						if _, err := fresh.Open(ctx, oneKey{k: cand}, sr); err == nil {
							opened++
							if when != "before the shred" {
								t.Errorf("%s: bytes at %s offset %d unwrap with the keyring and decrypt the shredded patient's version %d", when, name, off, sr.Version)
							}
						}
					}
				}
			}
		}
		t.Logf("%s: %d files read, %d decryptions of the victim's versions", when, len(files), opened)
		return opened
	}
	// Positive control: before the shred the same scan finds the key and
	// decrypts the patient.
	if scan("before the shred") == 0 {
		t.Fatal("the scan finds nothing before the shred; it is broken")
	}

	if _, err := s.Shred(ctx, victim); err != nil {
		t.Fatalf("Shred = %v", err)
	}
	scan("server running")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	scan("server stopped")
}

func where(files map[string][]byte, b []byte) (string, int, bool) {
	for name, data := range files {
		if i := bytes.Index(data, b); i >= 0 {
			return name, i, true
		}
	}
	return "", 0, false
}

// erasePendingStore is a Store whose Updates commit but then report the
// erasure of old key bytes pending, as a store whose readers keep its
// write-ahead log busy after a shred does.
type erasePendingStore struct{ phivault.Store }

func (s erasePendingStore) Update(ctx context.Context, fn func(phivault.StoreTx) error) error {
	if err := s.Store.Update(ctx, fn); err != nil {
		return err
	}
	return fmt.Errorf("test: readers kept the write-ahead log busy: %w", phivault.ErrErasePending)
}

// TestService_Shred_erasePending checks that a shred whose store could not
// yet erase the old key bytes after its commit is reported as done: the
// time of the shred with an error wrapping ErrErasePending, and the
// patient's records are erased.
func TestService_Shred_erasePending(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keys, _ := vaulttest.Keyring(t, dir)
	db, _ := vaulttest.SQLite(t, dir)
	sealer := vaulttest.Sealer(t, db, keys, envelope.Options{})
	s := vault.New(db, sealer)
	p, _, err := s.Create(ctx, "Patient", []byte(`{"resourceType":"Patient","active":true}`), phivault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	at, err := vault.New(erasePendingStore{db}, sealer).Shred(ctx, p.ID)
	if !errors.Is(err, phivault.ErrErasePending) || at.IsZero() {
		t.Fatalf("Shred() = %v, %v; want the time of the shred and ErrErasePending", at, err)
	}
	_, err = s.Read(ctx, "Patient", p.ID)
	wantShredded(t, "Read(Patient) after a shred whose erasure is pending", err)
	if again, err := s.Shred(ctx, p.ID); err != nil || !again.Equal(at) {
		t.Errorf("Shred again = %v, %v; want the first time %v", again, err, at)
	}
}
