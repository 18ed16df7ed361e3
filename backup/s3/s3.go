// Package s3 implements [backup.Target] over an S3-compatible object store
// (AWS S3, MinIO, versitygw, Ceph RGW, ...), with S3 Object Lock making
// each object immutable for a retention period.
//
// # Immutability
//
// When the bucket has Object Lock enabled (it can only be enabled when the
// bucket is made: [CreateBucket]) and [Config.Retention] is positive, every
// Put stores its object version with a COMPLIANCE-mode retention until
// now+Retention. Until then the server refuses, to every credential
// including the account root, to delete that version, to shorten its
// retention or switch it to GOVERNANCE mode, and to delete the bucket.
// [Open] refuses a positive Retention on a bucket without Object Lock.
//
// Object Lock needs bucket versioning, and in a versioned bucket S3 lets
// anyone with write access add a newer version (an overwrite) or a delete
// marker (a delete without a version id) on top of a locked version: the
// locked version stays, but a plain GET no longer returns it. So in a
// versioned bucket this target reads each name's FIRST written version
// and ignores newer versions and delete markers: a name, once written,
// reads the same bytes until its versions are deleted, whatever anyone
// puts or deletes on top of it. That costs one version listing per Get.
//
// # Write-once
//
// Put refuses a name that has any stored version (ErrExist), then writes
// with "If-None-Match: *", which servers that support conditional writes
// (AWS S3 since 2024, MinIO, versitygw) refuse if the name appeared in the
// meantime. On a server that ignores the header, two Puts racing for the
// same new name can both succeed; this target then reads the first one
// written, and backups only race on chunks, whose contents are equal.
//
// Delete never adds a delete marker: it deletes the name's versions one by
// one, newest first, and returns ErrRetained, deleting nothing, while any
// version is retained.
//
// A Target is safe for concurrent use by multiple goroutines.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/phivault/phivault/backup"
)

// Errors of Open, for callers to branch on with errors.Is.
var (
	ErrNoBucket     = errors.New("bucket does not exist")
	ErrNoObjectLock = errors.New("bucket has no object lock")
)

// Config says where a Target stores its objects and how.
type Config struct {
	// Endpoint is the server: "host:port", or "https://host[:port]".
	// "http://host:port" needs Insecure.
	Endpoint string
	// Bucket is the bucket's name.
	Bucket string
	// Prefix is put before every object name ("vault1" stores "keys" as
	// "vault1/keys"); empty means the bucket's top.
	Prefix string
	// Region is the bucket's region; empty lets the client find it.
	Region string
	// AccessKey and SecretKey are the credential. They are never logged
	// nor put in an error.
	AccessKey, SecretKey string
	// Insecure allows plain http, for a test server on loopback. The
	// default is TLS.
	Insecure bool
	// Retention is how long after its Put an object is locked
	// (COMPLIANCE mode). Zero sets no retention of the target's own (a
	// bucket default retention still applies); a positive Retention needs
	// a bucket with Object Lock.
	Retention time.Duration
	// Now returns the time; nil means time.Now.
	Now func() time.Time
	// ListPageSize is the number of names asked for per List request;
	// zero means the server's default (1000).
	ListPageSize int
}

// LogValue shows the config without the secret key.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("endpoint", c.Endpoint), slog.String("bucket", c.Bucket),
		slog.String("prefix", c.Prefix), slog.String("region", c.Region),
		slog.String("access_key", c.AccessKey), slog.Bool("insecure", c.Insecure),
		slog.Duration("retention", c.Retention))
}

// A Target is a backup.Target in an S3 bucket. Make one with Open.
type Target struct {
	client    *minio.Client
	bucket    string
	prefix    string // "" or ends in "/"
	retention time.Duration
	now       func() time.Time
	pageSize  int
	// versioned is whether the bucket keeps versions (Enabled or
	// Suspended): names are then read from their first version.
	versioned bool
	// locked is whether the bucket has Object Lock enabled.
	locked bool
}

var _ backup.DatedTarget = (*Target)(nil)

// Open connects to the bucket and checks it: it must exist, and have
// Object Lock enabled if c.Retention is positive.
func Open(ctx context.Context, c Config) (*Target, error) {
	client, prefix, err := newClient(c)
	if err != nil {
		return nil, err
	}
	t := &Target{client: client, bucket: c.Bucket, prefix: prefix, retention: c.Retention, now: c.Now, pageSize: c.ListPageSize}
	if t.now == nil {
		t.now = time.Now
	}
	if c.Retention < 0 {
		return nil, errors.New("backup: s3: negative retention")
	}
	ok, err := client.BucketExists(ctx, c.Bucket)
	if err != nil {
		return nil, fmt.Errorf("backup: s3 bucket %s: %w", c.Bucket, err)
	}
	if !ok {
		return nil, fmt.Errorf("backup: s3 bucket %s: %w; make it with object lock enabled first", c.Bucket, ErrNoBucket)
	}
	if t.locked, err = objectLockEnabled(ctx, client, c.Bucket); err != nil {
		return nil, err
	}
	if c.Retention > 0 && !t.locked {
		return nil, fmt.Errorf("backup: s3 bucket %s: %w, so a retention of %v cannot be enforced; use a bucket made with object lock enabled", c.Bucket, ErrNoObjectLock, c.Retention)
	}
	v, err := client.GetBucketVersioning(ctx, c.Bucket)
	if err != nil {
		return nil, fmt.Errorf("backup: s3 bucket %s versioning: %w", c.Bucket, err)
	}
	t.versioned = t.locked || v.Enabled() || v.Suspended()
	return t, nil
}

// Locked reports whether the bucket has Object Lock enabled.
func (t *Target) Locked() bool { return t.locked }

// CreateBucket makes the bucket c.Bucket with Object Lock (and so
// versioning) enabled. A bucket that exists already is accepted if it has
// Object Lock enabled: Object Lock cannot be added to a bucket later.
func CreateBucket(ctx context.Context, c Config) error {
	client, _, err := newClient(c)
	if err != nil {
		return err
	}
	err = client.MakeBucket(ctx, c.Bucket, minio.MakeBucketOptions{Region: c.Region, ObjectLocking: true})
	if code := minio.ToErrorResponse(err).Code; code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
		locked, lerr := objectLockEnabled(ctx, client, c.Bucket)
		if lerr != nil {
			return lerr
		}
		if !locked {
			return fmt.Errorf("backup: s3 bucket %s exists: %w, and it cannot be added to it; use a new bucket", c.Bucket, ErrNoObjectLock)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("backup: s3 create bucket %s: %w", c.Bucket, err)
	}
	return nil
}

// newClient checks c and returns a client for it, and the key prefix.
func newClient(c Config) (*minio.Client, string, error) {
	if c.Bucket == "" {
		return nil, "", errors.New("backup: s3: no bucket")
	}
	host, secure, err := parseEndpoint(c.Endpoint, c.Insecure)
	if err != nil {
		return nil, "", err
	}
	prefix := strings.Trim(c.Prefix, "/")
	if prefix != "" {
		if !backup.ValidName(prefix) {
			return nil, "", fmt.Errorf("backup: s3 prefix %q is not valid: use lowercase letters, digits, '-', '_' and '/'", c.Prefix)
		}
		prefix += "/"
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		return nil, "", errors.New("backup: s3: no access key or secret key")
	}
	client, err := minio.New(host, &minio.Options{
		// Only the given credential: never one from the environment.
		Creds:  credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""),
		Secure: secure,
		Region: c.Region,
	})
	if err != nil {
		return nil, "", fmt.Errorf("backup: s3 endpoint %s: %w", host, err)
	}
	return client, prefix, nil
}

// parseEndpoint returns the host:port of endpoint and whether to use TLS.
func parseEndpoint(endpoint string, insecure bool) (string, bool, error) {
	if endpoint == "" {
		return "", false, errors.New("backup: s3: no endpoint")
	}
	if !strings.Contains(endpoint, "://") {
		return endpoint, !insecure, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" {
		return "", false, fmt.Errorf("backup: s3 endpoint %q is not host:port or https://host[:port]", endpoint)
	}
	switch u.Scheme {
	case "https":
		if insecure {
			return "", false, fmt.Errorf("backup: s3 endpoint %q is https but plain http was asked for", endpoint)
		}
		return u.Host, true, nil
	case "http":
		if !insecure {
			return "", false, fmt.Errorf("backup: s3 endpoint %q is plain http: allow it explicitly (insecure), for a test server only", endpoint)
		}
		return u.Host, false, nil
	}
	return "", false, fmt.Errorf("backup: s3 endpoint %q: scheme must be https", endpoint)
}

// objectLockEnabled reports whether bucket has Object Lock enabled.
func objectLockEnabled(ctx context.Context, client *minio.Client, bucket string) (bool, error) {
	status, _, _, _, err := client.GetObjectLockConfig(ctx, bucket)
	if code := minio.ToErrorResponse(err).Code; code == "ObjectLockConfigurationNotFoundError" || code == "ObjectLockConfigurationNotFound" {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("backup: s3 bucket %s object lock: %w", bucket, err)
	}
	return status == "Enabled", nil
}

func (t *Target) key(name string) (string, error) {
	if !backup.ValidName(name) {
		return "", fmt.Errorf("backup: object name %q is not valid", name)
	}
	return t.prefix + name, nil
}

// Put stores data as name, write-once, with a COMPLIANCE retention until
// now+Retention when the target has a retention. It returns once the
// server has acknowledged the write, which S3 does only once the object
// is stored durably.
func (t *Target) Put(ctx context.Context, name string, data []byte) error {
	key, err := t.key(name)
	if err != nil {
		return err
	}
	switch _, err := t.first(ctx, key); {
	case err == nil:
		return fmt.Errorf("backup: s3 put %s: %w", name, backup.ErrExist)
	case !errors.Is(err, backup.ErrNotFound):
		return fmt.Errorf("backup: s3 put %s: %w", name, err)
	}
	opts := minio.PutObjectOptions{
		ContentType:      "application/octet-stream",
		DisableMultipart: true, // one request, so the condition covers the whole write
		SendContentMd5:   true, // S3 requires an integrity header on writes with a retention
	}
	opts.SetMatchETagExcept("*") // If-None-Match: *
	if t.retention > 0 {
		opts.Mode = minio.Compliance
		opts.RetainUntilDate = t.now().Add(t.retention).UTC()
	}
	_, err = t.client.PutObject(ctx, t.bucket, key, bytes.NewReader(data), int64(len(data)), opts)
	if code := minio.ToErrorResponse(err).Code; code == "PreconditionFailed" {
		return fmt.Errorf("backup: s3 put %s: %w", name, backup.ErrExist)
	}
	if err != nil {
		return fmt.Errorf("backup: s3 put %s: %w", name, err)
	}
	return nil
}

// Get returns the object name: in a versioned bucket, its first version.
func (t *Target) Get(ctx context.Context, name string) ([]byte, error) {
	key, err := t.key(name)
	if err != nil {
		return nil, err
	}
	v, err := t.first(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("backup: s3 object %s: %w", name, err)
	}
	obj, err := t.client.GetObject(ctx, t.bucket, key, minio.GetObjectOptions{VersionID: v.VersionID})
	if err != nil {
		return nil, fmt.Errorf("backup: s3 get %s: %w", name, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if isNotFound(err) { // deleted since it was listed
		return nil, fmt.Errorf("backup: s3 object %s: %w", name, backup.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("backup: s3 get %s: %w", name, err)
	}
	return b, nil
}

// Written returns the time the object name was written (its first
// version's), for prune's grace period (backup.DatedTarget).
func (t *Target) Written(ctx context.Context, name string) (time.Time, error) {
	key, err := t.key(name)
	if err != nil {
		return time.Time{}, err
	}
	v, err := t.first(ctx, key)
	if err != nil {
		return time.Time{}, fmt.Errorf("backup: s3 object %s: %w", name, err)
	}
	return v.LastModified, nil
}

// List returns the names under prefix, which ends in "/", relative to the
// target's prefix. It reads every page of the listing.
func (t *Target) List(ctx context.Context, prefix string) ([]string, error) {
	if !backup.ValidName(prefix+"x") || !strings.HasSuffix(prefix, "/") {
		return nil, fmt.Errorf("backup: list prefix %q is not valid", prefix)
	}
	opts := minio.ListObjectsOptions{Prefix: t.prefix + prefix, Recursive: true, WithVersions: t.versioned, MaxKeys: t.pageSize}
	seen := map[string]bool{}
	var names []string
	for o := range t.client.ListObjects(ctx, t.bucket, opts) {
		if o.Err != nil {
			return nil, fmt.Errorf("backup: s3 list %s: %w", prefix, o.Err)
		}
		name := strings.TrimPrefix(o.Key, t.prefix)
		if o.IsDeleteMarker || seen[name] || !backup.ValidName(name) {
			continue
		}
		seen[name] = true
		names = append(names, name)
	}
	return names, nil
}

// Delete removes every version of name, newest first, once none is
// retained. It never leaves a delete marker.
func (t *Target) Delete(ctx context.Context, name string) error {
	key, err := t.key(name)
	if err != nil {
		return err
	}
	vs, err := t.versions(ctx, key)
	if err != nil {
		return fmt.Errorf("backup: s3 delete %s: %w", name, err)
	}
	if !hasData(vs) {
		return fmt.Errorf("backup: s3 object %s: %w", name, backup.ErrNotFound)
	}
	if t.locked {
		for _, v := range vs {
			if v.IsDeleteMarker {
				continue
			}
			retained, err := t.retained(ctx, key, v.VersionID)
			if err != nil {
				return fmt.Errorf("backup: s3 delete %s: %w", name, err)
			}
			if retained {
				return fmt.Errorf("backup: s3 delete %s: %w", name, backup.ErrRetained)
			}
		}
	}
	for _, v := range vs {
		err := t.client.RemoveObject(ctx, t.bucket, key, minio.RemoveObjectOptions{VersionID: v.VersionID})
		if t.locked && minio.ToErrorResponse(err).Code == "AccessDenied" {
			// The server's clock says the lock holds yet.
			return fmt.Errorf("backup: s3 delete %s: %w (%v)", name, backup.ErrRetained, err)
		}
		if err != nil {
			return fmt.Errorf("backup: s3 delete %s: %w", name, err)
		}
	}
	return nil
}

// retained reports whether the version of key has a retention that holds
// at t.now().
func (t *Target) retained(ctx context.Context, key, versionID string) (bool, error) {
	_, until, err := Retention(ctx, t.client, t.bucket, key, versionID)
	if err != nil {
		return false, err
	}
	return t.now().Before(until), nil
}

// Retention returns the retention mode ("COMPLIANCE", "GOVERNANCE") and
// date of a version of key ("" for the current one); "" and the zero time
// if it has none. It reads them from the object's headers (HEAD) rather
// than GetObjectRetention, whose reply some servers (versitygw 1.8) frame
// differently from AWS.
func Retention(ctx context.Context, client *minio.Client, bucket, key, versionID string) (string, time.Time, error) {
	info, err := client.StatObject(ctx, bucket, key, minio.StatObjectOptions{VersionID: versionID})
	if err != nil {
		return "", time.Time{}, err
	}
	mode := info.Metadata.Get("X-Amz-Object-Lock-Mode")
	date := info.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date")
	if mode == "" || date == "" {
		return "", time.Time{}, nil
	}
	until, err := time.Parse(time.RFC3339Nano, date)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("retain-until date %q: %v", date, err)
	}
	return mode, until, nil
}

// first returns the version of key that the target reads: the first one
// written that is not a delete marker, or ErrNotFound.
func (t *Target) first(ctx context.Context, key string) (minio.ObjectInfo, error) {
	if !t.versioned {
		info, err := t.client.StatObject(ctx, t.bucket, key, minio.StatObjectOptions{})
		if isNotFound(err) {
			return minio.ObjectInfo{}, backup.ErrNotFound
		}
		return info, err
	}
	vs, err := t.versions(ctx, key)
	if err != nil {
		return minio.ObjectInfo{}, err
	}
	var first *minio.ObjectInfo
	for i := range vs { // newest first: the last one with data, or an older twin
		if !vs[i].IsDeleteMarker && (first == nil || !vs[i].LastModified.After(first.LastModified)) {
			first = &vs[i]
		}
	}
	if first == nil {
		return minio.ObjectInfo{}, backup.ErrNotFound
	}
	return *first, nil
}

// versions lists the versions of key, delete markers included, in the
// server's order (newest first). In a bucket without versioning it is
// the object, if any.
func (t *Target) versions(ctx context.Context, key string) ([]minio.ObjectInfo, error) {
	if !t.versioned {
		info, err := t.client.StatObject(ctx, t.bucket, key, minio.StatObjectOptions{})
		if isNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []minio.ObjectInfo{info}, nil
	}
	var vs []minio.ObjectInfo
	for o := range t.client.ListObjects(ctx, t.bucket, minio.ListObjectsOptions{Prefix: key, Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			return nil, o.Err
		}
		if o.Key == key {
			vs = append(vs, o)
		}
	}
	return vs, nil
}

func hasData(vs []minio.ObjectInfo) bool {
	for _, v := range vs {
		if !v.IsDeleteMarker {
			return true
		}
	}
	return false
}

func isNotFound(err error) bool {
	code := minio.ToErrorResponse(err).Code
	return code == "NoSuchKey" || code == "NoSuchVersion"
}
