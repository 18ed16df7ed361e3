package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"
)

// privatePostgres is a PostgreSQL instance of the test's own, run as the
// postgres user in a temporary folder, with its WAL archived to archive.
type privatePostgres struct {
	t       *testing.T
	bin     string // folder of initdb, pg_ctl, pg_basebackup
	root    string // owned by postgres
	data    string // the current data folder
	archive string
	port    int
	uid     int
	gid     int
}

// startPrivatePostgres initdbs and starts a PostgreSQL instance on a free
// port with WAL archiving on; it is stopped (immediate) when the test
// ends, whatever happens.
func startPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_basebackup")
	if len(bins) == 0 {
		t.Fatal("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql)")
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("the postgres user: %v", err)
	}
	p := &privatePostgres{t: t, bin: filepath.Dir(bins[len(bins)-1])}
	p.uid, _ = strconv.Atoi(u.Uid)
	p.gid, _ = strconv.Atoi(u.Gid)
	// Not t.TempDir: its parents are 0700 root, which postgres cannot
	// enter.
	if p.root, err = os.MkdirTemp("", "phivault-pitr-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(p.root) })
	p.data = filepath.Join(p.root, "data")
	p.archive = filepath.Join(p.root, "archive")
	if err := os.Mkdir(p.archive, 0o700); err != nil {
		t.Fatal(err)
	}
	p.chown(p.root)
	p.chown(p.archive)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.port = l.Addr().(*net.TCPAddr).Port
	l.Close()

	p.run("initdb", "-D", p.data, "-U", "postgres", "-A", "trust", "--locale=C", "-E", "UTF8", "--no-sync")
	p.appendConf(fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
wal_level = replica
archive_mode = on
archive_command = 'test ! -f %s/%%f && cp %%p %s/%%f'
max_wal_senders = 4
fsync = off
shared_buffers = 32MB
`, p.port, p.root, p.archive, p.archive))
	p.start()
	t.Cleanup(func() {
		// Stop whichever data folder runs now, even on failure.
		exec.Command("runuser", "-u", "postgres", "--", filepath.Join(p.bin, "pg_ctl"), "-D", p.data, "stop", "-m", "immediate").Run()
	})
	return p
}

func (p *privatePostgres) chown(path string) {
	if err := os.Chown(path, p.uid, p.gid); err != nil {
		p.t.Fatal(err)
	}
}

// run runs a PostgreSQL program as the postgres user.
func (p *privatePostgres) run(prog string, args ...string) string {
	p.t.Helper()
	cmd := exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(p.bin, prog)}, args...)...)
	cmd.Dir = p.root
	out, err := cmd.CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(p.root, "postgres.log"))
		p.t.Fatalf("%s %s: %v\n%s\nserver log:\n%s", prog, strings.Join(args, " "), err, out, log)
	}
	return string(out)
}

func (p *privatePostgres) appendConf(s string) {
	p.t.Helper()
	f, err := os.OpenFile(filepath.Join(p.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		p.t.Fatal(err)
	}
}

func (p *privatePostgres) start() {
	p.t.Helper()
	p.run("pg_ctl", "-D", p.data, "-l", filepath.Join(p.root, "postgres.log"), "-w", "-t", "60", "start")
}

// url is the instance's URL, with a password the trust authentication
// ignores: the test checks that no command prints it.
func (p *privatePostgres) url() string {
	return fmt.Sprintf("postgres://postgres:pitr-s3cret@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// query runs a query returning one value.
func (p *privatePostgres) query(q string, dst any) {
	p.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.url())
	if err != nil {
		p.t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, q).Scan(dst); err != nil {
		p.t.Fatalf("%s: %v", q, err)
	}
}

// archiveCurrentWAL switches to a new WAL segment and waits until the
// archiver has copied the one it closed.
func (p *privatePostgres) archiveCurrentWAL() {
	p.t.Helper()
	var seg string
	p.query(`SELECT pg_walfile_name(pg_switch_wal())`, &seg)
	for range 300 {
		if _, err := os.Stat(filepath.Join(p.archive, seg)); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("WAL segment %s not archived", seg)
}

// dirSize returns the bytes of the files under dir.
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// TestBackup_postgresPITR runs the standard route for a vault on
// PostgreSQL (docs/backup.md, "PostgreSQL deployments") end to end, on a
// private PostgreSQL instance: a base backup and a WAL archive for the
// database, "phivault backup" for the data folder; then the instance is
// lost, the database recovered to a time T from the base backup and the
// archive, the folder restored with "phivault restore", and the vault
// served from both: every patient created before T reads back, none
// created after T exists, a patient shredded after T (which the recovery
// brings back) is listed by restore and shredded again with "phivault
// keys shred", and "phivault audit verify" passes.
func TestBackup_postgresPITR(t *testing.T) {
	if os.Getenv("PHIVAULT_TEST_POSTGRES_URL") == "" {
		t.Skip("set PHIVAULT_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run (.ci/run does); this test starts a private PostgreSQL instance of its own")
	}
	ctx := context.Background()
	pg := startPrivatePostgres(t)
	sc := StoreConfig{URL: pg.url(), Schema: "vault"}
	setStoreEnv(t, sc)
	d, witness := initTestData(t)
	root := t.TempDir()
	bk := filepath.Join(root, "backups")
	identity, _ := age.GenerateX25519Identity()
	idFile := filepath.Join(root, "backup-identity.txt")
	if err := os.WriteFile(idFile, []byte(identity.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	serve := func(d dataDir, witness string) (*auditApp, func()) {
		t.Helper()
		token, err := newAdminToken(d)
		if err != nil {
			t.Fatal(err)
		}
		app, err := openApp(ctx, Config{Data: d, Passphrase: "correct horse battery staple", Store: sc, Audit: AuditConfig{WitnessFile: witness}}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("openApp(%s): %v", d, err)
		}
		srv := httptest.NewServer(app.fhirAndAdmin())
		return &auditApp{app: app, url: srv.URL, token: token}, func() {
			srv.Close()
			if err := app.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		}
	}
	a, closeVault := serve(d, witness)
	create := func(prefix string, n int) map[string]string {
		t.Helper()
		made := map[string]string{}
		for i := range n {
			family := fmt.Sprintf("%s%d", prefix, i)
			notes := strings.Repeat("PITR test patient. ", 100)
			status, body := a.do(t, "POST", "/fhir/Patient", `{"resourceType":"Patient","name":[{"family":"`+family+`"}],"address":[{"text":"`+notes+`"}]}`)
			if status != http.StatusCreated {
				t.Fatalf("create = %d %s", status, body)
			}
			var p struct{ ID string }
			json.Unmarshal(body, &p)
			made[p.ID] = family
		}
		return made
	}
	before := create("Basebackupson", 100)

	// The database: a base backup, its WAL streamed with it.
	base := filepath.Join(pg.root, "base")
	start := time.Now()
	pg.run("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(pg.port), "-U", "postgres", "-D", base, "-F", "p", "-X", "stream", "-c", "fast", "--no-sync")
	took := time.Since(start).Round(time.Millisecond)
	var schemaBytes int64
	pg.query(`SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'vault' AND c.relkind = 'r'`, &schemaBytes)
	t.Logf("pg_basebackup: %v, %d bytes, of which the vault's schema (100 patients) %d bytes", took, dirSize(base), schemaBytes)

	// The folder: phivault backup, which says the database is not in it.
	var out bytes.Buffer
	if err := run(ctx, []string{"backup", "-data", string(d), "-to", bk, "-recipient", identity.Recipient().String()}, &out, io.Discard); err != nil {
		t.Fatalf("phivault backup of a PostgreSQL data folder = %v", err)
	}
	t.Logf("phivault backup: %s", out.String())
	m := regexp.MustCompile(`^snapshot ([0-9a-f]{32}):`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("phivault backup printed %q, want a snapshot id", out.String())
	}
	beforeT := m[1]
	if s := out.String(); !strings.Contains(s, "PostgreSQL") || !strings.Contains(s, `schema "vault"`) || !strings.Contains(s, `database "postgres"`) {
		t.Errorf("phivault backup printed %q, want a note naming the PostgreSQL database and schema to back up with PostgreSQL's tools", s)
	}
	if strings.Contains(out.String(), "pitr-s3cret") {
		t.Errorf("phivault backup printed the database password: %q", out.String())
	}
	if _, err := os.Stat(d.database()); err == nil {
		t.Error("phivault backup made an SQLite database in a PostgreSQL data folder")
	}

	for id, f := range create("Beforetarget", 30) {
		before[id] = f
	}
	// A checkpoint before T, so the witness at T binds the recovered trail.
	if _, err := a.audit.log.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	target := time.Now().UTC()
	// The witness as it was at T: the witnesses go on after T, and the
	// recovered trail ends at T (docs/backup.md).
	witnessAtT := filepath.Join(root, "witness-at-T", "audit-checkpoints.log")
	os.MkdirAll(filepath.Dir(witnessAtT), 0o700)
	if b, err := os.ReadFile(witness); err != nil || !bytes.Contains(b, []byte("\n\n")) {
		t.Fatalf("the witness file at T holds no checkpoint (%v)", err)
	} else if err := os.WriteFile(witnessAtT, b, 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	after := create("Aftertarget", 30)
	// A patient of before T shredded after T: the recovery to T brings
	// its key back. The next folder backup records its tombstone.
	var shredAfterT string
	for id := range before {
		shredAfterT = id
		break
	}
	if status, body := a.do(t, "POST", "/fhir/admin/patients/"+shredAfterT+"/$shred", ""); status != http.StatusOK {
		t.Fatalf("shred = %d %s", status, body)
	}
	gone, _ := a.do(t, "GET", "/fhir/Patient/"+shredAfterT, "")
	out.Reset()
	if err := run(ctx, []string{"backup", "-data", string(d), "-to", bk}, &out, io.Discard); err != nil {
		t.Fatalf("second phivault backup = %v", err)
	}
	if !strings.Contains(out.String(), "recorded 1 new shred tombstones") {
		t.Errorf("second phivault backup printed %q, want the shred's tombstone recorded", out.String())
	}
	closeVault()
	pg.archiveCurrentWAL()

	// The loss: the instance and its data folder are gone.
	pg.run("pg_ctl", "-D", pg.data, "stop", "-m", "immediate")
	if err := os.RemoveAll(pg.data); err != nil {
		t.Fatal(err)
	}
	// Point-in-time recovery: the base backup, the archive, the target.
	start = time.Now()
	pg.data = filepath.Join(pg.root, "recovered")
	if err := os.Rename(base, pg.data); err != nil {
		t.Fatal(err)
	}
	pg.appendConf(fmt.Sprintf(`
restore_command = 'cp %s/%%f %%p'
recovery_target_time = '%s'
recovery_target_action = 'promote'
`, pg.archive, target.Format("2006-01-02 15:04:05.999999+00")))
	sig := filepath.Join(pg.data, "recovery.signal")
	if err := os.WriteFile(sig, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	pg.chown(sig)
	pg.start()
	for i := 0; ; i++ {
		var inRecovery bool
		pg.query(`SELECT pg_is_in_recovery()`, &inRecovery)
		if !inRecovery {
			break
		}
		if i == 600 {
			t.Fatal("PostgreSQL still in recovery after 60 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("point-in-time recovery: %v", time.Since(start).Round(time.Millisecond))

	// The witness file goes on after T (it saw the patients created
	// after T); the recovered trail ends at T, so the vault is served
	// against the witness as it was at T, put back at its path (the data
	// folder records it).
	b, err := os.ReadFile(witnessAtT)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(witness, b, 0o600); err != nil {
		t.Fatal(err)
	}

	// The folder: phivault restore of the last snapshot taken before T
	// (a later one's checkpoint log covers entries the recovered trail
	// lacks, and the server refuses it), which says the database comes
	// back by PITR, and lists every tombstone in the backup folder, those
	// recorded after T too.
	d2 := dataDir(filepath.Join(root, "restored", "data"))
	out.Reset()
	if err := run(ctx, []string{"restore", "-from", bk, "-snapshot", beforeT, "-identity", idFile, "-data", string(d2), "-verifier", d.auditVerifierKey(), "-audit-witness-file", witness}, &out, io.Discard); err != nil {
		t.Fatalf("restore = %v", err)
	}
	if !strings.Contains(out.String(), "point-in-time recovery") {
		t.Errorf("restore printed %q, want a note that the database comes back by point-in-time recovery", out.String())
	}
	if !strings.Contains(out.String(), "SHREDS:") || !strings.Contains(out.String(), "Patient/"+shredAfterT+"\n") {
		t.Errorf("restore printed %q, want Patient/%s listed to shred again", out.String(), shredAfterT)
	}
	if k, err := d2.storeKind(); err != nil || k != storePostgres {
		t.Fatalf("restored folder's store = %q, %v; want postgres", k, err)
	}
	if _, err := os.Stat(d2.database()); err == nil {
		t.Error("restore made an SQLite database in a PostgreSQL data folder")
	}

	r, closeRestored := serve(d2, witness)
	for id, family := range before {
		status, body := r.do(t, "GET", "/fhir/Patient/"+id, "")
		if status != http.StatusOK || !strings.Contains(string(body), family) {
			t.Fatalf("read Patient/%s created before T = %d %s, want %s", id, status, body, family)
		}
	}
	for id := range after {
		if status, _ := r.do(t, "GET", "/fhir/Patient/"+id, ""); status != http.StatusNotFound {
			t.Errorf("read Patient/%s created after T = %d, want 404", id, status)
		}
	}
	closeRestored()

	// The recovery brought the patient shredded after T back (read above);
	// shredding it again offline, as restore printed, destroys its key.
	out.Reset()
	if err := run(ctx, []string{"keys", "shred", "-data", string(d2), "--patient", shredAfterT}, &out, io.Discard); err != nil {
		t.Fatalf("keys shred -data (again, after PITR) = %v", err)
	}
	r, closeRestored = serve(d2, witness)
	if status, _ := r.do(t, "GET", "/fhir/Patient/"+shredAfterT, ""); status != gone || status == http.StatusOK {
		t.Errorf("read Patient/%s shredded again after PITR = %d, want %d as after the shred", shredAfterT, status, gone)
	}
	closeRestored()
	out.Reset()
	if err := run(ctx, []string{"audit", "verify", "-data", string(d2), "-audit-witness-file", witness}, &out, io.Discard); err != nil {
		t.Errorf("audit verify of the recovered vault = %v\n%s", err, out.String())
	}
}
