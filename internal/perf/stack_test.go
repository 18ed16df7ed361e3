package perf_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"
	_ "modernc.org/sqlite" // driver "sqlite" for the raw baseline

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/internal/plainseal"
	"github.com/phivault/phivault/internal/vaulttest"
	"github.com/phivault/phivault/postgres"
	"github.com/phivault/phivault/server"
	"github.com/phivault/phivault/sqlite"
	"github.com/phivault/phivault/synth"
	"github.com/phivault/phivault/vault"
)

// mode selects the sealer of a stack.
type mode string

const (
	encrypted mode = "encrypted"
	plaintext mode = "plaintext"
	// audited is encrypted with the audit trail on, wired as serve wires
	// it: every request waits for its durable audit entry.
	audited mode = "audited"
)

const bundleBase = "https://127.0.0.1/fhir"

// newSealer returns the sealer for m, initialized in store as openApp does.
func newSealer(tb testing.TB, store phivault.Store, m mode) phivault.Sealer {
	tb.Helper()
	if m == plaintext {
		return plainseal.Sealer{}
	}
	keys, _ := vaulttest.Keyring(tb, tb.TempDir())
	return vaulttest.Sealer(tb, store, keys, envelope.Options{})
}

// openService returns a vault service over a fresh SQLite store.
func openService(tb testing.TB, m mode) *vault.Service {
	tb.Helper()
	svc, _ := openServiceDB(tb, m)
	return svc
}

func openServiceDB(tb testing.TB, m mode) (*vault.Service, *sqlite.DB) {
	tb.Helper()
	db, _ := vaulttest.SQLite(tb, tb.TempDir())
	return vault.New(db, newSealer(tb, db, m)), db
}

// openAudit opens the audit trail on db as cmd/phivault's openAudit does:
// checkpoints signed every second and written to a file witness.
func openAudit(tb testing.TB, db *sqlite.DB) *auditlog.Log {
	tb.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, "phivault-bench-audit")
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	l := auditlog.New(db, signer.Name(), signer)
	l.Witnesses = []auditlog.Witness{&auditlog.FileWitness{Path: filepath.Join(tb.TempDir(), "audit-checkpoints.log")}}
	if err := l.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

// postgresURL returns PHIVAULT_TEST_POSTGRES_URL or skips.
func postgresURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("PHIVAULT_TEST_POSTGRES_URL")
	if u == "" {
		tb.Skip("PostgreSQL benchmark skipped: set PHIVAULT_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run it")
	}
	return u
}

// openPostgres opens a store in a fresh schema, dropped at cleanup. It
// returns the store and a function that runs VACUUM ANALYZE on the
// schema's tables.
func openPostgres(tb testing.TB, dbURL string) (*postgres.DB, func(testing.TB)) {
	tb.Helper()
	ctx := context.Background()
	db := postgres.New(dbURL)
	db.Schema = "bench_" + randomHex(tb, 8)
	if err := db.Open(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		db.Close()
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			tb.Errorf("connect to drop schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{db.Schema}.Sanitize()+` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", db.Schema, err)
		}
	})
	vacuum := func(tb testing.TB) {
		tb.Helper()
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			tb.Fatal(err)
		}
		defer conn.Close(ctx)
		var tables []string
		for _, t := range []string{"current", "versions", "tokens", "keys"} {
			tables = append(tables, pgx.Identifier{db.Schema, t}.Sanitize())
		}
		if _, err := conn.Exec(ctx, `VACUUM (ANALYZE) `+strings.Join(tables, ", ")); err != nil {
			tb.Fatal(err)
		}
	}
	return db, vacuum
}

func randomHex(tb testing.TB, n int) string {
	tb.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// stack is a running vault behind HTTPS plus a client for it.
type stack struct {
	svc    *vault.Service
	base   string // e.g. https://127.0.0.1:40123/fhir
	token  string
	caPEM  []byte // the server's self-signed certificate
	client *http.Client

	// settle, if not nil, brings the store after seeding to the state a
	// deployment keeps it in. On PostgreSQL it runs VACUUM ANALYZE, as
	// autovacuum would after a load (which the test server may have
	// turned off): without statistics and visibility maps the plans and
	// their costs depend on whether autovacuum happened to run yet.
	settle func(testing.TB)
}

// openStack wires the request path the way cmd/phivault's openApp does and
// serves it on 127.0.0.1 with a self-signed certificate. The client speaks
// HTTP/1.1 with keep-alive and up to conns connections, and verifies the
// certificate.
func openStack(tb testing.TB, m mode, conns int) *stack {
	tb.Helper()
	svc, db := openServiceDB(tb, m)
	var records phivault.RecordService = svc
	if m == audited {
		records = auditlog.NewRecordService(svc, openAudit(tb, db))
	}
	return serveStack(tb, svc, records, conns)
}

// openPostgresStack is openStack on a PostgreSQL store in a fresh schema,
// without the audit trail. It skips without PHIVAULT_TEST_POSTGRES_URL.
func openPostgresStack(tb testing.TB, m mode, conns int) *stack {
	tb.Helper()
	if m == audited {
		tb.Fatal("openPostgresStack: the audited stack runs on SQLite only")
	}
	db, vacuum := openPostgres(tb, postgresURL(tb))
	svc := vault.New(db, newSealer(tb, db, m))
	s := serveStack(tb, svc, svc, conns)
	s.settle = vacuum
	return s
}

// serveStack serves records, the request path over svc, as serve does.
func serveStack(tb testing.TB, svc *vault.Service, records phivault.RecordService, conns int) *stack {
	tb.Helper()
	ctx := context.Background()
	token := randomHex(tb, 32)
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil)) // serve logs a JSON line per request
	handler := api.NewHandler(records, api.Options{
		Authenticator: &api.TokenAuthenticator{Hash: api.HashToken(token), Actor: "admin"},
		Registerer:    prometheus.NewRegistry(),
		Logger:        logger,
		Version:       "bench",
	})
	certPEM, keyPEM, err := server.SelfSigned(nil, time.Now(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		tb.Fatal(err)
	}
	srv := server.New(server.Config{Addr: "127.0.0.1:0", Certificate: &cert, FHIR: handler, Logger: logger})
	if err := srv.Open(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })

	return &stack{
		svc:    svc,
		base:   srv.URL() + "/fhir",
		token:  token,
		caPEM:  certPEM,
		client: newBenchClient(tb, certPEM, conns),
	}
}

// do sends one request and reads the whole response.
func (s *stack) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// load is the outcome of a run of the load generator.
type load struct {
	durs    []time.Duration // per request, in completion order per worker
	elapsed time.Duration
	bytes   int64
}

// hammer sends total GET requests for paths (round robin) from conc
// goroutines sharing s.client, and fails on any non-200 answer.
func (s *stack) hammer(tb testing.TB, paths []string, total, conc int) load {
	tb.Helper()
	l, err := s.tryHammer(context.Background(), paths, total, conc)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// tryHammer is hammer, returning the first error instead of failing.
func (s *stack) tryHammer(ctx context.Context, paths []string, total, conc int) (load, error) {
	var next atomic.Int64
	var nbytes atomic.Int64
	per := make([][]time.Duration, conc)
	errs := make([]error, conc)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range conc {
		wg.Go(func() {
			durs := make([]time.Duration, 0, total/conc+1)
			for {
				i := next.Add(1) - 1
				if i >= int64(total) {
					break
				}
				t0 := time.Now()
				status, body, err := s.do(ctx, http.MethodGet, paths[i%int64(len(paths))], nil)
				durs = append(durs, time.Since(t0))
				if err == nil && status != http.StatusOK {
					err = fmt.Errorf("GET %s: HTTP %d", paths[i%int64(len(paths))], status)
				}
				if err != nil {
					errs[w] = err
					break
				}
				nbytes.Add(int64(len(body)))
			}
			per[w] = durs
		})
	}
	wg.Wait()
	l := load{elapsed: time.Since(start), bytes: nbytes.Load()}
	for _, d := range per {
		l.durs = append(l.durs, d...)
	}
	return l, errors.Join(errs...)
}

// report adds req/s and latency percentiles of runs to b.
func report(b *testing.B, runs []load) {
	var all []time.Duration
	var elapsed time.Duration
	var nbytes int64
	for _, r := range runs {
		all = append(all, r.durs...)
		elapsed += r.elapsed
		nbytes += r.bytes
	}
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(ms(pct(all, 50)), "p50-ms")
	b.ReportMetric(ms(pct(all, 99)), "p99-ms")
	b.ReportMetric(float64(nbytes)/float64(len(all)), "B/resp")
	b.ReportMetric(0, "ns/op") // meaningless here: one op is a whole run
}

func pct(sorted []time.Duration, p int) time.Duration {
	return sorted[(len(sorted)-1)*p/100]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// target is what the read and search loads refer to.
type target struct {
	patients    []string // ids
	identifiers []string // system|value of each patient's MRN
	obsCodes    []string // system|code of one of each patient's observations
}

// seed loads a synthetic hospital of n patients into svc and returns the
// ids and search values to load with.
func seed(tb testing.TB, svc *vault.Service, n int) *target {
	tb.Helper()
	ctx := context.Background()
	var bundles [][]byte
	for bundle, err := range synth.Bundles(synth.Options{Seed: 1, Patients: n}) {
		if err != nil {
			tb.Fatal(err)
		}
		bundles = append(bundles, bundle)
	}
	// The first bundle holds the shared resources the others refer to.
	if _, err := svc.Bundle(ctx, bundles[0], bundleBase); err != nil {
		tb.Fatal(err)
	}
	err := importAll(bundles[1:], inflight, func(b []byte) error { _, err := svc.Bundle(ctx, b, bundleBase); return err })
	if err != nil {
		tb.Fatal(err)
	}
	t := &target{}
	res, err := svc.Search(ctx, &phivault.Query{Type: "Patient", Count: vault.MaxCount})
	if err != nil {
		tb.Fatal(err)
	}
	for _, p := range res.Matches {
		var body struct {
			Identifier []struct{ System, Value string }
		}
		if err := json.Unmarshal(p.Body, &body); err != nil {
			tb.Fatal(err)
		}
		for _, id := range body.Identifier {
			if id.System == synth.MRNSystem {
				t.patients = append(t.patients, p.ID)
				t.identifiers = append(t.identifiers, id.System+"|"+id.Value)
				break
			}
		}
	}
	if len(t.patients) != n {
		tb.Fatalf("seeded %d patients with an MRN, want %d", len(t.patients), n)
	}
	for _, id := range t.patients {
		res, err := svc.Search(ctx, &phivault.Query{
			Type:   "Observation",
			Params: []phivault.QueryParam{{Name: "patient", Values: []string{id}}},
			Count:  1,
		})
		if err != nil {
			tb.Fatal(err)
		}
		if len(res.Matches) == 0 {
			tb.Fatalf("patient %s has no observations", id)
		}
		var body struct {
			Code struct {
				Coding []struct{ System, Code string }
			}
		}
		if err := json.Unmarshal(res.Matches[0].Body, &body); err != nil || len(body.Code.Coding) == 0 {
			tb.Fatalf("observation without a code: %v", err)
		}
		c := body.Code.Coding[0]
		t.obsCodes = append(t.obsCodes, c.System+"|"+c.Code)
	}
	return t
}

func (t *target) readPaths() []string {
	var out []string
	for _, id := range t.patients {
		out = append(out, "/Patient/"+id)
	}
	return out
}

func (t *target) identifierPaths() []string {
	var out []string
	for _, v := range t.identifiers {
		out = append(out, "/Patient?identifier="+url.QueryEscape(v))
	}
	return out
}

func (t *target) observationPaths() []string {
	var out []string
	for i, id := range t.patients {
		out = append(out, "/Observation?patient="+id+"&code="+url.QueryEscape(t.obsCodes[i]))
	}
	return out
}

// importAll runs fn on every bundle with inflight bundles in flight.
func importAll(bundles [][]byte, inflight int, fn func([]byte) error) error {
	work := make(chan []byte)
	errs := make([]error, inflight)
	var wg sync.WaitGroup
	for w := range inflight {
		wg.Go(func() {
			for data := range work {
				if errs[w] != nil {
					continue
				}
				errs[w] = fn(data)
			}
		})
	}
	for _, b := range bundles {
		work <- b
	}
	close(work)
	wg.Wait()
	return errors.Join(errs...)
}

// bundleEntries decodes the resources of a transaction bundle.
func bundleEntries(data []byte) ([]json.RawMessage, error) {
	var b struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, len(b.Entry))
	for i, e := range b.Entry {
		out[i] = e.Resource
	}
	return out, nil
}

// rawDB is the import baseline: one SQLite table of JSON text, one row per
// resource, with the store's durability settings (WAL, synchronous=FULL) and
// one transaction per bundle. Synthea bundles repeat the shared
// Organizations and Practitioners (phivault creates them once, through
// ifNoneExist), so a repeated (type, id) is skipped here too.
type rawDB struct{ db *sql.DB }

func openRaw(tb testing.TB) *rawDB {
	tb.Helper()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "cache_size(-65536)")
	q.Add("_pragma", "temp_store(MEMORY)")
	path := filepath.Join(tb.TempDir(), "raw.db")
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		tb.Fatal(err)
	}
	db.SetMaxOpenConns(1) // SQLite has one writer; callers queue here
	tb.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE resource (type TEXT NOT NULL, id TEXT NOT NULL, json TEXT NOT NULL, PRIMARY KEY (type, id))`); err != nil {
		tb.Fatal(err)
	}
	return &rawDB{db: db}
}

// importBundle parses data and inserts its resources in one transaction.
func (r *rawDB) importBundle(ctx context.Context, data []byte) error {
	entries, err := bundleEntries(data)
	if err != nil {
		return err
	}
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `INSERT INTO resource (type, id, json) VALUES (?, ?, ?) ON CONFLICT (type, id) DO NOTHING`)
	if err != nil {
		return err
	}
	defer st.Close()
	for i, e := range entries {
		var head struct{ ResourceType, ID string }
		if err := json.Unmarshal(e, &head); err != nil {
			return err
		}
		if head.ID == "" {
			head.ID = fmt.Sprintf("r%d-%s", i, randomID())
		}
		if _, err := st.ExecContext(ctx, head.ResourceType, head.ID, string(e)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func randomID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
