package s3_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/signer"
	"github.com/phivault/phivault/backup"
	"github.com/phivault/phivault/backup/s3"
	"github.com/phivault/phivault/internal/s3test"
	"golang.org/x/mod/sumdb/note"
)

// config returns a Config for bucket on srv with the root credential.
func config(srv *s3test.Server, bucket string) s3.Config {
	return s3.Config{
		Endpoint:  srv.Endpoint,
		Bucket:    bucket,
		Region:    s3test.Region,
		AccessKey: s3test.RootAccessKey,
		SecretKey: s3test.RootSecretKey,
		Insecure:  true,
	}
}

// rootClient returns a plain S3 client with the server's root credential:
// the attacker's, and the test's way to look behind the target.
func rootClient(t testing.TB, srv *s3test.Server) *minio.Client {
	t.Helper()
	c, err := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s3test.RootAccessKey, s3test.RootSecretKey, ""), Region: s3test.Region, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// mustLockedTarget makes a bucket with object lock and opens a target on it.
func mustLockedTarget(t testing.TB, srv *s3test.Server, c s3.Config) *s3.Target {
	t.Helper()
	ctx := context.Background()
	if err := s3.CreateBucket(ctx, c); err != nil {
		t.Fatalf("CreateBucket: %v", err)
	}
	tg, err := s3.Open(ctx, c)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !tg.Locked() {
		t.Fatal("target on a bucket made with object lock: Locked() = false")
	}
	return tg
}

// TestTarget_writeOnce runs backup.Dir's contract (TestDir_writeOnce)
// against a bucket with object lock.
func TestTarget_writeOnce(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	c := config(srv, "write-once")
	c.Prefix = "vault1"
	// Short, so the test can see the lock expire; Now is the real clock,
	// as the server's is.
	c.Retention = 2 * time.Second
	d := mustLockedTarget(t, srv, c)

	before := time.Now()
	if err := d.Put(ctx, "chunks/ab", []byte("one")); err != nil {
		t.Fatal(err)
	}
	// The time prune's grace period reads; the server's clock is this
	// machine's, and S3 keeps seconds.
	if w, err := d.Written(ctx, "chunks/ab"); err != nil || w.Before(before.Add(-time.Second)) || w.After(time.Now().Add(time.Second)) {
		t.Errorf("Written = %v, %v; want the time of the Put (%v)", w, err, before)
	}
	if _, err := d.Written(ctx, "chunks/cd"); !errors.Is(err, backup.ErrNotFound) {
		t.Errorf("Written of a missing object = %v, want %v", err, backup.ErrNotFound)
	}
	if err := d.Put(ctx, "chunks/ab", []byte("two")); !errors.Is(err, backup.ErrExist) {
		t.Errorf("second Put = %v, want %v", err, backup.ErrExist)
	}
	if b, err := d.Get(ctx, "chunks/ab"); err != nil || string(b) != "one" {
		t.Errorf("Get = %q, %v; want the first write", b, err)
	}
	if _, err := d.Get(ctx, "chunks/cd"); !errors.Is(err, backup.ErrNotFound) {
		t.Errorf("Get of a missing object = %v, want %v", err, backup.ErrNotFound)
	}
	if err := d.Delete(ctx, "chunks/cd"); !errors.Is(err, backup.ErrNotFound) {
		t.Errorf("Delete of a missing object = %v, want %v", err, backup.ErrNotFound)
	}
	if err := d.Delete(ctx, "chunks/ab"); !errors.Is(err, backup.ErrRetained) {
		t.Errorf("Delete of a fresh object = %v, want %v", err, backup.ErrRetained)
	}
	// The server's lock, not only the target's clock, refuses: a target
	// whose clock is past the retention is still refused.
	late := c
	late.Now = func() time.Time { return time.Now().Add(time.Hour) }
	lateTarget, err := s3.Open(ctx, late)
	if err != nil {
		t.Fatal(err)
	}
	if err := lateTarget.Delete(ctx, "chunks/ab"); !errors.Is(err, backup.ErrRetained) {
		t.Errorf("Delete of a locked object by a target with a clock an hour ahead = %v, want %v", err, backup.ErrRetained)
	}
	if b, err := d.Get(ctx, "chunks/ab"); err != nil || string(b) != "one" {
		t.Fatalf("Get after refused deletes = %q, %v; want the first write", b, err)
	}

	waitUnlocked(t, rootClient(t, srv), "write-once", "vault1/chunks/ab")
	if err := d.Delete(ctx, "chunks/ab"); err != nil {
		t.Errorf("Delete after the retention = %v, want nil", err)
	}
	if _, err := d.Get(ctx, "chunks/ab"); !errors.Is(err, backup.ErrNotFound) {
		t.Errorf("Get after Delete = %v, want %v", err, backup.ErrNotFound)
	}
	if n := countVersions(t, rootClient(t, srv), "write-once", "vault1/chunks/ab"); n != 0 {
		t.Errorf("after Delete the bucket holds %d versions (or delete markers) of the object, want none", n)
	}
	if err := d.Put(ctx, "chunks/ab", []byte("one")); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"../x", "chunks/../../x", "/etc/passwd", "Chunks/A", "chunks/", ""} {
		if err := d.Put(ctx, bad, nil); err == nil {
			t.Errorf("Put(%q) = nil, want refused", bad)
		}
	}
	if got, err := d.List(ctx, "chunks/"); err != nil || !slices.Equal(got, []string{"chunks/ab"}) {
		t.Errorf("List(chunks/) = %q, %v; want the one object", got, err)
	}
}

// waitUnlocked waits until the retention of key's versions has passed by
// the local clock, plus a second for the server's date precision.
func waitUnlocked(t *testing.T, c *minio.Client, bucket, key string) {
	t.Helper()
	_, until, err := s3.Retention(context.Background(), c, bucket, key, "")
	if err != nil || until.IsZero() {
		t.Fatalf("Retention = %v, %v; want a retention", until, err)
	}
	time.Sleep(time.Until(until.Add(time.Second)))
}

func countVersions(t *testing.T, c *minio.Client, bucket, key string) int {
	t.Helper()
	n := 0
	for o := range c.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: key, WithVersions: true, Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if o.Key == key {
			n++
		}
	}
	return n
}

func TestTarget_List(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	c := config(srv, "list")
	c.Prefix = "/vault1/" // slashes around are trimmed
	c.ListPageSize = 2    // five objects take three pages
	d := mustLockedTarget(t, srv, c)
	if got, err := d.List(ctx, "chunks/"); err != nil || len(got) != 0 {
		t.Errorf("List of an empty target = %q, %v; want none", got, err)
	}
	var want []string
	for _, id := range []string{"01", "02", "03", "04", "05"} {
		want = append(want, "chunks/"+id)
		if err := d.Put(ctx, "chunks/"+id, []byte(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Put(ctx, "snapshots/aa", []byte("s")); err != nil {
		t.Fatal(err)
	}
	// Near misses: outside the prefix, and another vault's prefix.
	root := rootClient(t, srv)
	for _, key := range []string{"chunks/99", "vault10/chunks/98", "vault1chunks/97"} {
		if _, err := root.PutObject(ctx, "list", key, strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := d.List(ctx, "chunks/")
	slices.Sort(got)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("List(chunks/) = %q, %v; want %q", got, err, want)
	}
	if got, err := d.List(ctx, "snapshots/"); err != nil || !slices.Equal(got, []string{"snapshots/aa"}) {
		t.Errorf("List(snapshots/) = %q, %v; want [snapshots/aa]", got, err)
	}
	for _, bad := range []string{"chunks", "../", "/chunks/", "Chunks/"} {
		if _, err := d.List(ctx, bad); err == nil {
			t.Errorf("List(%q) = nil error, want refused", bad)
		}
	}
}

func TestOpen(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	root := rootClient(t, srv)
	if err := root.MakeBucket(ctx, "unlocked", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("OK", func(t *testing.T) {
		c := config(srv, "locked")
		c.Retention = backup.DefaultRetention
		mustLockedTarget(t, srv, c)
		if err := s3.CreateBucket(ctx, c); err != nil {
			t.Errorf("CreateBucket of an existing bucket with object lock = %v, want nil", err)
		}
	})
	t.Run("RetentionWithoutObjectLock", func(t *testing.T) {
		c := config(srv, "unlocked")
		c.Retention = time.Hour
		if _, err := s3.Open(ctx, c); !errors.Is(err, s3.ErrNoObjectLock) {
			t.Errorf("Open with a retention on a bucket without object lock = %v, want refused", err)
		}
		if err := s3.CreateBucket(ctx, c); !errors.Is(err, s3.ErrNoObjectLock) {
			t.Errorf("CreateBucket of an existing bucket without object lock = %v, want %v", err, s3.ErrNoObjectLock)
		}
		// Without a retention, a plain bucket is a plain write-once target.
		c.Retention = 0
		d, err := s3.Open(ctx, c)
		if err != nil {
			t.Fatalf("Open without retention = %v", err)
		}
		if err := d.Put(ctx, "keys", []byte("k")); err != nil {
			t.Fatal(err)
		}
		if err := d.Put(ctx, "keys", []byte("other")); !errors.Is(err, backup.ErrExist) {
			t.Errorf("second Put = %v, want %v", err, backup.ErrExist)
		}
		if err := d.Delete(ctx, "keys"); err != nil {
			t.Errorf("Delete without retention = %v, want nil", err)
		}
		if err := d.Delete(ctx, "keys"); !errors.Is(err, backup.ErrNotFound) {
			t.Errorf("second Delete = %v, want %v", err, backup.ErrNotFound)
		}
	})
	t.Run("NoBucket", func(t *testing.T) {
		if _, err := s3.Open(ctx, config(srv, "missing")); !errors.Is(err, s3.ErrNoBucket) {
			t.Errorf("Open of a missing bucket = %v, want refused", err)
		}
	})
	t.Run("BadConfig", func(t *testing.T) {
		for name, edit := range map[string]func(*s3.Config){
			"plain http not asked for": func(c *s3.Config) { c.Endpoint = "http://" + srv.Endpoint; c.Insecure = false },
			"no bucket":                func(c *s3.Config) { c.Bucket = "" },
			"no secret":                func(c *s3.Config) { c.SecretKey = "" },
			"bad prefix":               func(c *s3.Config) { c.Prefix = "../x" },
			"ftp endpoint":             func(c *s3.Config) { c.Endpoint = "ftp://" + srv.Endpoint },
			"negative retention":       func(c *s3.Config) { c.Retention = -time.Hour },
		} {
			c := config(srv, "locked")
			edit(&c)
			if _, err := s3.Open(ctx, c); err == nil {
				t.Errorf("Open with %s = nil error, want refused", name)
			}
		}
		// TLS is the default: a plain http server is not spoken to in clear.
		c := config(srv, "locked")
		c.Insecure = false
		if _, err := s3.Open(ctx, c); err == nil {
			t.Error("Open of a plain http server without Insecure = nil error, want a TLS failure")
		}
	})
	t.Run("WrongSecret", func(t *testing.T) {
		c := config(srv, "locked")
		c.SecretKey = "not-the-secret"
		_, err := s3.Open(ctx, c)
		if err == nil {
			t.Fatal("Open with a wrong secret = nil error")
		}
		if strings.Contains(err.Error(), c.SecretKey) || strings.Contains(err.Error(), s3test.RootSecretKey) {
			t.Errorf("error %q holds a secret", err)
		}
	})
}

// testVault is a data folder and its backup keys.
type testVault struct {
	dir      string
	files    map[string][]byte
	identity *age.X25519Identity
	signer   note.Signer
	verifier note.Verifier
	vkey     string
}

func mustTestVault(t testing.TB) *testVault {
	t.Helper()
	v := &testVault{dir: t.TempDir(), files: map[string][]byte{
		"keyring.age":  make([]byte, 700<<10), // several chunks
		"install-id":   []byte("0123"),
		"tls/cert.pem": []byte("cert"),
	}}
	rand.Read(v.files["keyring.age"])
	for name, b := range v.files {
		p := filepath.Join(v.dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, "phivault-audit-test")
	if err != nil {
		t.Fatal(err)
	}
	v.vkey = vkey
	v.signer, _ = note.NewSigner(skey)
	v.verifier, _ = note.NewVerifier(vkey)
	v.identity, _ = age.GenerateX25519Identity()
	return v
}

func (v *testVault) backup(t *testing.T, tg backup.Target) *backup.Result {
	t.Helper()
	ctx := context.Background()
	keys, err := backup.Init(ctx, tg, rand.Reader, v.vkey, v.identity.Recipient())
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	res, err := backup.Backup(ctx, v.dir, tg, backup.Options{Keys: keys, Signer: v.signer})
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	return res
}

// checkRestore restores snapshot id from tg and compares every file.
func (v *testVault) checkRestore(t *testing.T, tg backup.Target, id string) {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "restored")
	m, err := backup.Restore(context.Background(), tg, id, dest, backup.RestoreOptions{Identities: []age.Identity{v.identity}, Verifier: v.verifier})
	if err != nil {
		t.Fatalf("Restore = %v", err)
	}
	if id != "" && m.Snapshot != id {
		t.Errorf("Restore restored %s, want %s", m.Snapshot, id)
	}
	for name, want := range v.files {
		got, err := os.ReadFile(filepath.Join(dest, filepath.FromSlash(name)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("restored %s: %d bytes, %v; want the %d bytes backed up", name, len(got), err, len(want))
		}
	}
}

func TestBackupRestore(t *testing.T) {
	srv := s3test.Start(t)
	c := config(srv, "backups")
	c.Prefix = "vault1"
	c.Retention = time.Hour
	tg := mustLockedTarget(t, srv, c)
	v := mustTestVault(t)
	res := v.backup(t, tg)
	if res.NewChunks < 3 {
		t.Fatalf("backup wrote %d chunks, want several", res.NewChunks)
	}
	v.checkRestore(t, tg, res.Snapshot)

	// Every object is locked in COMPLIANCE mode for the retention.
	root := rootClient(t, srv)
	n := 0
	for o := range root.ListObjects(context.Background(), "backups", minio.ListObjectsOptions{Prefix: "vault1/", Recursive: true}) {
		mode, until, err := s3.Retention(context.Background(), root, "backups", o.Key, "")
		if err != nil || mode != "COMPLIANCE" || until.Before(time.Now().Add(50*time.Minute)) {
			t.Errorf("retention of %s = %v, %v, %v; want COMPLIANCE for an hour", o.Key, mode, until, err)
		}
		n++
	}
	if n != res.NewChunks+2 {
		t.Errorf("bucket holds %d objects under vault1/, want %d chunks, keys and the snapshot", n, res.NewChunks)
	}
}

// TestTarget_attacker plays someone holding the server's ROOT credential
// who wants the backups gone: every way S3 offers to delete or change a
// locked version must fail, and the backup must still restore, verified.
func TestTarget_attacker(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	const bucket = "backups"
	c := config(srv, bucket)
	c.Prefix = "vault1"
	c.Retention = time.Hour
	tg := mustLockedTarget(t, srv, c)
	v := mustTestVault(t)
	res := v.backup(t, tg)
	root := rootClient(t, srv)

	var stored []storedVersion
	for o := range root.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "vault1/", Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		mode, until := serverRetention(t, srv, bucket, o.Key, o.VersionID)
		if mode != "COMPLIANCE" || until.Before(time.Now().Add(50*time.Minute)) {
			t.Fatalf("retention of %s = %s until %v, want COMPLIANCE for an hour", o.Key, mode, until)
		}
		stored = append(stored, storedVersion{key: o.Key, id: o.VersionID, data: mustGet(t, root, bucket, o.Key, o.VersionID), until: until})
	}
	if len(stored) < 5 || stored[0].id == "" {
		t.Fatalf("bucket holds %d versions (first version id %q), want a versioned backup", len(stored), stored[0].id)
	}

	earlier := time.Now().Add(time.Minute)
	governance, compliance := minio.Governance, minio.Compliance
	mustFail := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("root could %s", what)
		}
	}
	for _, s := range stored {
		mustFail("delete version "+s.id+" of "+s.key,
			root.RemoveObject(ctx, bucket, s.key, minio.RemoveObjectOptions{VersionID: s.id}))
		mustFail("delete version "+s.id+" of "+s.key+" bypassing governance",
			root.RemoveObject(ctx, bucket, s.key, minio.RemoveObjectOptions{VersionID: s.id, GovernanceBypass: true, ForceDelete: true}))
		mustFail("shorten the retention of "+s.key,
			root.PutObjectRetention(ctx, bucket, s.key, minio.PutObjectRetentionOptions{VersionID: s.id, Mode: &compliance, RetainUntilDate: &earlier}))
		mustFail("switch "+s.key+" to GOVERNANCE",
			root.PutObjectRetention(ctx, bucket, s.key, minio.PutObjectRetentionOptions{VersionID: s.id, Mode: &governance, RetainUntilDate: &s.until, GovernanceBypass: true}))
		mustFail("shorten the retention of "+s.key+" bypassing governance",
			root.PutObjectRetention(ctx, bucket, s.key, minio.PutObjectRetentionOptions{VersionID: s.id, Mode: &compliance, RetainUntilDate: &earlier, GovernanceBypass: true}))
	}
	for r := range root.RemoveObjectsWithResult(ctx, bucket, objectsChan(stored, true), minio.RemoveObjectsOptions{GovernanceBypass: true}) {
		if r.Err == nil {
			t.Errorf("root could delete version %s of %s in a multi-object delete", r.ObjectVersionID, r.ObjectName)
		}
	}
	mustFail("delete the bucket", root.RemoveBucket(ctx, bucket))
	mustFail("force-delete the bucket", root.RemoveBucketWithOptions(ctx, bucket, minio.RemoveBucketOptions{ForceDelete: true}))
	err := root.SetBucketVersioning(ctx, bucket, minio.BucketVersioningConfiguration{Status: "Suspended"})
	mustFail("suspend versioning", err)

	// S3 lets anyone who may write add a newer version or a delete marker
	// on top of a locked version; the target reads the first version, so
	// neither hides nor replaces the backup.
	overwritten, hidden := 0, 0
	for _, s := range stored {
		if _, err := root.PutObject(ctx, bucket, s.key, strings.NewReader("garbage"), 7, minio.PutObjectOptions{}); err == nil {
			overwritten++
		}
	}
	for _, s := range stored[:len(stored)/2] {
		if err := root.RemoveObject(ctx, bucket, s.key, minio.RemoveObjectOptions{}); err == nil {
			hidden++
		}
	}
	for r := range root.RemoveObjectsWithResult(ctx, bucket, objectsChan(stored[len(stored)/2:], false), minio.RemoveObjectsOptions{}) {
		if r.Err == nil {
			hidden++
		}
	}
	t.Logf("the server accepted %d of %d overwrites (each a newer version) and %d of %d deletes without a version id (each a delete marker)",
		overwritten, len(stored), hidden, len(stored))
	if _, err := root.StatObject(ctx, bucket, stored[0].key, minio.StatObjectOptions{}); err == nil && hidden == len(stored) {
		t.Errorf("a plain HEAD of %s finds an object behind a delete marker", stored[0].key)
	}

	for _, s := range stored {
		got, err := root.GetObject(ctx, bucket, s.key, minio.GetObjectOptions{VersionID: s.id})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(got)
		if err != nil || !bytes.Equal(b, s.data) {
			t.Errorf("version %s of %s after the attack: %d bytes, %v; want the %d bytes written", s.id, s.key, len(b), err, len(s.data))
		}
		if mode, until := serverRetention(t, srv, bucket, s.key, s.id); mode != "COMPLIANCE" || !until.Equal(s.until) {
			t.Errorf("retention of %s after the attack = %s until %v; want COMPLIANCE until %v", s.key, mode, until, s.until)
		}
	}
	if names, err := tg.List(ctx, "chunks/"); err != nil || len(names) != res.NewChunks {
		t.Errorf("List(chunks/) after the attack = %d names, %v; want %d", len(names), err, res.NewChunks)
	}
	v.checkRestore(t, tg, res.Snapshot)
	v.checkRestore(t, tg, "") // the latest, found by List
}

func mustGet(t *testing.T, c *minio.Client, bucket, key, versionID string) []byte {
	t.Helper()
	o, err := c.GetObject(context.Background(), bucket, key, minio.GetObjectOptions{VersionID: versionID})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// storedVersion is an object version as the backup wrote it.
type storedVersion struct {
	key, id string
	data    []byte
	until   time.Time
}

// objectsChan sends the versions' keys, with their version ids if withIDs.
func objectsChan(vs []storedVersion, withIDs bool) <-chan minio.ObjectInfo {
	ch := make(chan minio.ObjectInfo, len(vs))
	for _, v := range vs {
		o := minio.ObjectInfo{Key: v.key}
		if withIDs {
			o.VersionID = v.id
		}
		ch <- o
	}
	close(ch)
	return ch
}

// serverRetention asks the server for the retention of a version of key
// (GetObjectRetention). minio-go's GetObjectRetention cannot read
// versitygw 1.8's reply, whose root element is ObjectLockRetention where
// AWS says Retention, and versitygw's HEAD of a non-current version omits
// the lock headers: so the test signs the request itself and reads the
// reply whatever its root element.
func serverRetention(t *testing.T, srv *s3test.Server, bucket, key, versionID string) (string, time.Time) {
	t.Helper()
	u := &url.URL{Scheme: "http", Host: srv.Endpoint, Path: "/" + bucket + "/" + key, RawQuery: "retention=&versionId=" + url.QueryEscape(versionID)}
	req, err := http.NewRequest(http.MethodGet, u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Content-Sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") // of nothing
	resp, err := http.DefaultClient.Do(signer.SignV4(*req, s3test.RootAccessKey, s3test.RootSecretKey, "", s3test.Region))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GetObjectRetention %s %s: %s: %s", key, versionID, resp.Status, body)
	}
	var r struct {
		Mode            string
		RetainUntilDate time.Time
	}
	if err := xml.Unmarshal(body, &r); err != nil {
		t.Fatalf("GetObjectRetention %s: %v: %s", key, err, body)
	}
	return r.Mode, r.RetainUntilDate
}

// BenchmarkTarget compares Put and Get of a 64 KiB object (a chunk of
// average size) on a locked S3 bucket with a backup.Dir.
func BenchmarkTarget(b *testing.B) {
	srv := s3test.Start(b)
	c := config(srv, "bench")
	c.Retention = time.Hour
	targets := []struct {
		name string
		t    backup.Target
	}{
		{"s3", mustLockedTarget(b, srv, c)},
		{"dir", &backup.Dir{Path: b.TempDir()}},
	}
	data := make([]byte, 64<<10)
	rand.Read(data)
	ctx := context.Background()
	n := 0 // names stay new across -count runs
	for _, tt := range targets {
		// Fixed width, as chunk ids are: no name is a prefix of another.
		first := fmt.Sprintf("chunks/%08d", n+1)
		b.Run(tt.name+"/Put", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				n++
				if err := tt.t.Put(ctx, fmt.Sprintf("chunks/%08d", n), data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tt.name+"/Get", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := tt.t.Get(ctx, first); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestTarget_concurrentPut races Puts of the same new names: exactly one
// wins each name, the others get ErrExist, and the name reads the
// winner's bytes. The server's conditional write closes the window the
// existence check leaves, which the test checks directly too.
func TestTarget_concurrentPut(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	c := config(srv, "race")
	c.Retention = time.Hour
	d := mustLockedTarget(t, srv, c)

	root := rootClient(t, srv)
	if err := d.Put(ctx, "keys", []byte("k")); err != nil {
		t.Fatal(err)
	}
	opts := minio.PutObjectOptions{}
	opts.SetMatchETagExcept("*")
	_, err := root.PutObject(ctx, "race", "keys", strings.NewReader("x"), 1, opts)
	if code := minio.ToErrorResponse(err).Code; code != "PreconditionFailed" {
		t.Fatalf("server: a put with If-None-Match: * over an existing object = %v (%s), want PreconditionFailed", err, code)
	}

	const writers = 4
	for i := range 10 {
		name := fmt.Sprintf("chunks/%02d", i)
		errs := make(chan error, writers)
		for w := range writers {
			go func() { errs <- d.Put(ctx, name, []byte{byte(w)}) }()
		}
		won := -1
		for range writers {
			switch err := <-errs; {
			case err == nil:
				won++
			case !errors.Is(err, backup.ErrExist):
				t.Errorf("Put(%s) = %v, want nil or %v", name, err, backup.ErrExist)
			}
		}
		if won != 0 {
			t.Errorf("%d Puts of %s succeeded, want one", won+1, name)
		}
		if n := countVersions(t, root, "race", name); n != 1 {
			t.Errorf("%s has %d versions, want one", name, n)
		}
	}
}
