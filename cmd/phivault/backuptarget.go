package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/phivault/phivault/backup"
	"github.com/phivault/phivault/backup/s3"
)

// backupTargetUsage is the part of backup's and restore's usage about
// where backups go.
const backupTargetUsage = `
A backup target is a folder, or s3://BUCKET/PREFIX for an S3-compatible
bucket, configured from the environment (docs/backup.md):

  PHIVAULT_S3_ENDPOINT        host:port or https://host[:port] (required)
  PHIVAULT_S3_REGION          the bucket's region (default: found by the client)
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
                              the credential (or PHIVAULT_S3_ACCESS_KEY and
                              PHIVAULT_S3_SECRET_KEY, or their _FILE forms)
  PHIVAULT_S3_INSECURE=1      plain http, for a test server only (TLS otherwise)
  PHIVAULT_BACKUP_RETENTION   how long each object is locked, COMPLIANCE mode:
                              a duration such as 720h or 30d (default 30d);
                              0 sets none. A positive one needs a bucket
                              made with object lock.
  PHIVAULT_S3_CREATE_BUCKET=1 make the bucket, with object lock, if missing
`

// s3BackupTimeout bounds connecting to a bucket and checking it.
const s3BackupTimeout = time.Minute

// openBackupTarget returns the backup target that spec names: a folder, or
// s3://BUCKET/PREFIX configured from env (os.Getenv in production).
func openBackupTarget(spec string, env func(string) string) (backup.Target, error) {
	if !strings.HasPrefix(spec, "s3://") {
		if strings.Contains(spec, "://") {
			return nil, errorWithHint(fmt.Sprintf("backup target %q: only folders and s3:// are supported", spec), "phivault backup -to s3://BUCKET/PREFIX")
		}
		return &backup.Dir{Path: spec}, nil
	}
	c, err := s3BackupConfig(spec, env)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), s3BackupTimeout)
	defer cancel()
	if env("PHIVAULT_S3_CREATE_BUCKET") == "1" {
		if err := s3.CreateBucket(ctx, c); err != nil {
			return nil, err
		}
	}
	t, err := s3.Open(ctx, c)
	if errors.Is(err, s3.ErrNoBucket) || errors.Is(err, s3.ErrNoObjectLock) {
		return nil, &hintError{err: err, hint: "PHIVAULT_S3_CREATE_BUCKET=1 phivault backup -to s3://NEW-BUCKET/PREFIX makes a bucket with object lock"}
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

// s3BackupConfig parses s3://BUCKET/PREFIX and reads the rest from env.
func s3BackupConfig(spec string, env func(string) string) (s3.Config, error) {
	u, err := url.Parse(spec)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return s3.Config{}, errorWithHint(fmt.Sprintf("backup target %q is not s3://BUCKET/PREFIX", spec), "phivault backup -to s3://phivault-backups/vault1")
	}
	c := s3.Config{
		Endpoint: env("PHIVAULT_S3_ENDPOINT"),
		Bucket:   u.Host,
		Prefix:   strings.Trim(u.Path, "/"),
		Region:   env("PHIVAULT_S3_REGION"),
	}
	if c.Endpoint == "" {
		return s3.Config{}, errorWithHint("an s3:// backup target needs PHIVAULT_S3_ENDPOINT", "PHIVAULT_S3_ENDPOINT=s3.eu-west-2.amazonaws.com phivault backup -to "+spec)
	}
	switch v := env("PHIVAULT_S3_INSECURE"); v {
	case "", "0":
	case "1":
		c.Insecure = true
	default:
		return s3.Config{}, fmt.Errorf("PHIVAULT_S3_INSECURE=%q: want 1 or unset", v)
	}
	if c.AccessKey, err = envSecret(env, "PHIVAULT_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID"); err != nil {
		return s3.Config{}, err
	}
	if c.SecretKey, err = envSecret(env, "PHIVAULT_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"); err != nil {
		return s3.Config{}, err
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		return s3.Config{}, errorWithHint("an s3:// backup target needs a credential", "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or PHIVAULT_S3_ACCESS_KEY and PHIVAULT_S3_SECRET_KEY)")
	}
	c.Retention = backup.DefaultRetention
	if v := env("PHIVAULT_BACKUP_RETENTION"); v != "" {
		if c.Retention, err = parseRetention(v); err != nil {
			return s3.Config{}, err
		}
	}
	return c, nil
}

// envSecret returns the value of the first of names that is set, reading
// NAME_FILE for the phivault names. The error never holds the value.
func envSecret(env func(string) string, phivaultName, awsName string) (string, error) {
	v, file := env(phivaultName), env(phivaultName+"_FILE")
	switch {
	case v != "" && file != "":
		return "", fmt.Errorf("set %s or %s_FILE, not both", phivaultName, phivaultName)
	case v != "":
		return v, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read %s_FILE: %w", phivaultName, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return env(awsName), nil
}

// parseRetention parses PHIVAULT_BACKUP_RETENTION: a Go duration ("720h")
// or a number of days ("30d"), not negative.
func parseRetention(v string) (time.Duration, error) {
	d, err := parseDays(v) // see backupprune.go
	if err == nil && d < 0 {
		err = errors.New("negative")
	}
	if err != nil {
		return 0, fmt.Errorf("PHIVAULT_BACKUP_RETENTION=%q: want a duration such as 720h or 30d: %v", v, err)
	}
	return d, nil
}
