package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/phivault/phivault/backup"
	"github.com/phivault/phivault/backup/s3"
	"github.com/phivault/phivault/internal/s3test"
)

// TestBackup_s3 backs a vault up to a real S3 server (versitygw) through
// the command, lists the backups, restores the latest into a new folder,
// reads every patient back and verifies the audit trail.
func TestBackup_s3(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	t.Setenv("PHIVAULT_S3_ENDPOINT", srv.Endpoint)
	t.Setenv("PHIVAULT_S3_INSECURE", "1")
	t.Setenv("PHIVAULT_S3_REGION", s3test.Region)
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.RootAccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.RootSecretKey)
	t.Setenv("PHIVAULT_BACKUP_RETENTION", "1h")
	const to = "s3://vault-backups/site-a/vault1"

	f := newBackupFixture(t)
	d, witness, root, identity, idFile := f.d, f.witness, f.root, f.identity, f.idFile
	a, closeVault := openVault(t, d, witness)
	patients := map[string]string{}
	create := func(n int) {
		for range n {
			family := fmt.Sprintf("Bucketson%d", len(patients))
			status, body := a.do(t, "POST", "/fhir/Patient", `{"resourceType":"Patient","name":[{"family":"`+family+`"}]}`)
			if status != http.StatusCreated {
				t.Fatalf("create = %d %s", status, body)
			}
			var p struct{ ID string }
			json.Unmarshal(body, &p)
			patients[p.ID] = family
		}
	}
	create(50)

	// No bucket yet: refused, with the way to make one.
	err := run(ctx, []string{"backup", "-data", string(d), "-to", to, "-recipient", identity.Recipient().String()}, io.Discard, io.Discard)
	var hint *hintError
	if !errors.Is(err, s3.ErrNoBucket) || !errors.As(err, &hint) || !strings.Contains(hint.hint, "PHIVAULT_S3_CREATE_BUCKET") {
		t.Fatalf("backup to a missing bucket = %v, want %v with a hint", err, s3.ErrNoBucket)
	}
	t.Setenv("PHIVAULT_S3_CREATE_BUCKET", "1")
	first, _, written1 := backupRun(t, "-data", string(d), "-to", to, "-recipient", identity.Recipient().String())
	os.Unsetenv("PHIVAULT_S3_CREATE_BUCKET")
	create(1)
	second, size2, written2 := backupRun(t, "-data", string(d), "-to", to)
	t.Logf("first backup wrote %d bytes, the second %d of %d", written1, written2, size2)
	closeVault()

	var list bytes.Buffer
	if err := run(ctx, []string{"backup", "list", "-data", string(d), "-to", to}, &list, io.Discard); err != nil {
		t.Fatalf("backup list = %v", err)
	}
	for _, id := range []string{first, second} {
		if !strings.Contains(list.String(), id) {
			t.Errorf("backup list does not show snapshot %s:\n%s", id, list.String())
		}
	}

	// Every object is locked in COMPLIANCE mode, under the prefix only.
	client, err := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s3test.RootAccessKey, s3test.RootSecretKey, ""), Region: s3test.Region})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for o := range client.ListObjects(ctx, "vault-backups", minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		mode, until, err := s3.Retention(ctx, client, "vault-backups", o.Key, "")
		if !strings.HasPrefix(o.Key, "site-a/vault1/") || err != nil || mode != "COMPLIANCE" || until.Before(time.Now().Add(50*time.Minute)) {
			t.Errorf("object %s: retention %s until %v, %v; want under site-a/vault1/, COMPLIANCE for an hour", o.Key, mode, until, err)
		}
		n++
	}
	if n < 3 {
		t.Errorf("bucket holds %d objects, want keys, chunks and snapshots", n)
	}
	// The backup refuses to be deleted, even by the root credential.
	if err := client.RemoveBucket(ctx, "vault-backups"); err == nil {
		t.Error("root deleted the backup bucket")
	}

	d2 := dataDir(filepath.Join(root, "restored"))
	var out bytes.Buffer
	if err := run(ctx, []string{"restore", "-from", to, "-identity", idFile, "-data", string(d2), "-verifier", d.auditVerifierKey(), "-audit-witness-file", witness}, &out, io.Discard); err != nil {
		t.Fatalf("restore = %v", err)
	}
	if !strings.Contains(out.String(), second) {
		t.Errorf("restore printed %q, want the latest snapshot %s", out.String(), second)
	}
	r, closeRestored := openVault(t, d2, witness)
	for id, family := range patients {
		status, body := r.do(t, "GET", "/fhir/Patient/"+id, "")
		if status != http.StatusOK || !strings.Contains(string(body), family) {
			t.Fatalf("read restored Patient/%s = %d %s, want %s", id, status, body, family)
		}
	}
	closeRestored()
	if err := run(ctx, []string{"audit", "verify", "-data", string(d2), "-audit-witness-file", witness}, io.Discard, io.Discard); err != nil {
		t.Errorf("audit verify of the restored vault = %v", err)
	}

	// Near misses: a wrong secret, and a bucket without object lock.
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-key")
	err = run(ctx, []string{"backup", "list", "-data", string(d), "-to", to}, io.Discard, io.Discard)
	if err == nil || strings.Contains(err.Error(), "wrong-secret-key") {
		t.Errorf("backup list with a wrong secret = %v, want refused without the secret", err)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.RootSecretKey)
	if err := client.MakeBucket(ctx, "unlocked", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	err = run(ctx, []string{"backup", "-data", string(d), "-to", "s3://unlocked/vault1", "-identity", idFile}, io.Discard, io.Discard)
	if !errors.Is(err, s3.ErrNoObjectLock) {
		t.Errorf("backup to a bucket without object lock = %v, want %v", err, s3.ErrNoObjectLock)
	}
}

func TestOpenBackupTarget(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte("from-file\n"), 0o600)
	base := map[string]string{
		"PHIVAULT_S3_ENDPOINT":  "s3.example.com",
		"AWS_ACCESS_KEY_ID":     "AKID",
		"AWS_SECRET_ACCESS_KEY": "aws-secret",
	}
	envOf := func(edits map[string]string) func(string) string {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for k, v := range edits {
			env[k] = v
		}
		return func(k string) string { return env[k] }
	}

	t.Run("Folder", func(t *testing.T) {
		tg, err := openBackupTarget("/mnt/backup", envOf(nil))
		if d, ok := tg.(*backup.Dir); err != nil || !ok || d.Path != "/mnt/backup" {
			t.Errorf("openBackupTarget(/mnt/backup) = %#v, %v; want a backup.Dir", tg, err)
		}
	})
	t.Run("Config", func(t *testing.T) {
		tests := []struct {
			give  string
			edits map[string]string
			want  s3.Config
		}{
			{"s3://bkt/a/b/", nil, s3.Config{Endpoint: "s3.example.com", Bucket: "bkt", Prefix: "a/b", AccessKey: "AKID", SecretKey: "aws-secret", Retention: backup.DefaultRetention}},
			{"s3://bkt", map[string]string{"PHIVAULT_S3_INSECURE": "1", "PHIVAULT_S3_REGION": "eu-west-2", "PHIVAULT_BACKUP_RETENTION": "7d"},
				s3.Config{Endpoint: "s3.example.com", Bucket: "bkt", Region: "eu-west-2", AccessKey: "AKID", SecretKey: "aws-secret", Insecure: true, Retention: 7 * 24 * time.Hour}},
			{"s3://bkt/p", map[string]string{"PHIVAULT_S3_ACCESS_KEY": "PV", "PHIVAULT_S3_SECRET_KEY_FILE": secretFile, "PHIVAULT_BACKUP_RETENTION": "0"},
				s3.Config{Endpoint: "s3.example.com", Bucket: "bkt", Prefix: "p", AccessKey: "PV", SecretKey: "from-file"}},
		}
		for _, tt := range tests {
			got, err := s3BackupConfig(tt.give, envOf(tt.edits))
			if err != nil || got.LogValue().String() != tt.want.LogValue().String() || got.SecretKey != tt.want.SecretKey {
				t.Errorf("s3BackupConfig(%q, %v) = %v, %v; want %v", tt.give, tt.edits, got.LogValue(), err, tt.want.LogValue())
			}
		}
	})
	t.Run("Refused", func(t *testing.T) {
		tests := []struct {
			give  string
			edits map[string]string
		}{
			{"s3://", nil},
			{"ftp://host/x", nil},
			{"s3://bkt?x=1", nil},
			{"s3://user@bkt/x", nil},
			{"s3://bkt/x", map[string]string{"PHIVAULT_S3_ENDPOINT": ""}},
			{"s3://bkt/x", map[string]string{"AWS_SECRET_ACCESS_KEY": ""}},
			{"s3://bkt/x", map[string]string{"PHIVAULT_S3_SECRET_KEY": "a", "PHIVAULT_S3_SECRET_KEY_FILE": secretFile}},
			{"s3://bkt/x", map[string]string{"PHIVAULT_S3_INSECURE": "yes"}},
			{"s3://bkt/x", map[string]string{"PHIVAULT_BACKUP_RETENTION": "30x"}},
			{"s3://bkt/x", map[string]string{"PHIVAULT_BACKUP_RETENTION": "-1h"}},
			{"s3://bkt/x", map[string]string{"PHIVAULT_BACKUP_RETENTION": "99999d"}},
			{"s3://bkt/x", map[string]string{"PHIVAULT_S3_ENDPOINT": "http://127.0.0.1:1"}}, // plain http not asked for
		}
		for _, tt := range tests {
			_, err := openBackupTarget(tt.give, envOf(tt.edits))
			if err == nil {
				t.Errorf("openBackupTarget(%q, %v) = nil error, want refused", tt.give, tt.edits)
			} else if strings.Contains(err.Error(), "aws-secret") {
				t.Errorf("openBackupTarget(%q) error %q holds the secret", tt.give, err)
			}
		}
	})
}
