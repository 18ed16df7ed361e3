package stream

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/benbjohnson/litestream"
	"github.com/phivault/phivault/backup"
	"github.com/superfly/ltx"
)

// ClientType is what Client.Type returns.
const ClientType = "phivault-backup"

// A Client is a litestream.ReplicaClient that keeps the LTX files of one
// database's stream in a backup.Target, each sealed with the target's key
// set under its object name:
//
//	stream/<id>/<level>/<min>-<max>-<unix-ms>-<size>
//
// where id is the key set's StreamID of the database's name, min and max
// the file's TXIDs (16 hex digits), unix-ms the time in its LTX header (its
// commit time; compactions carry their newest input's) and size its length.
// The name carries what Litestream lists, so listing reads no object; the
// seal binds the name, so an object renamed, changed, cut short or swapped
// with another fails to open (backup.ErrCorrupt).
//
// Targets are write-once and refuse deletions during their retention: a
// deletion refused with backup.ErrRetained is reported to Litestream as
// done; the object stays (it only widens restores' choice) and is asked
// for again by the next Client of the stream. Writing a name that exists
// is taken as done if the object holds the same file (a retried upload).
//
// A Client keeps the names of its stream in memory after listing them
// once: it must be the stream's only writer. It is safe for concurrent use
// by multiple goroutines.
type Client struct {
	target backup.Target
	keys   *backup.KeySet
	prefix string // "stream/<id>/"
	rand   io.Reader

	mu     sync.Mutex
	logger *slog.Logger
	levels map[int]map[fileKey]fileName // listed levels: file → its object
}

// fileKey identifies an LTX file of a stream.
type fileKey struct {
	level    int
	min, max ltx.TXID
}

// fileName is an object of a stream, parsed.
type fileName struct {
	name    string
	created time.Time
	size    int64
}

var _ litestream.ReplicaClient = (*Client)(nil)

// NewClient returns a Client for the stream of the database dbName (its
// slash name relative to the data folder) in t, sealed with keys.
func NewClient(t backup.Target, keys *backup.KeySet, dbName string) *Client {
	return &Client{
		target: t,
		keys:   keys,
		prefix: streamPrefix + keys.StreamID(dbName) + "/",
		rand:   rand.Reader,
		logger: slog.New(slog.DiscardHandler),
		levels: map[int]map[fileKey]fileName{},
	}
}

// Type returns ClientType.
func (c *Client) Type() string { return ClientType }

// Init does nothing: the target needs no set-up.
func (c *Client) Init(ctx context.Context) error { return nil }

// SetLogger sets the logger.
func (c *Client) SetLogger(logger *slog.Logger) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.logger = logger
}

func (c *Client) levelPrefix(level int) string { return c.prefix + strconv.Itoa(level) + "/" }

func (c *Client) objectName(k fileKey, created time.Time, size int64) string {
	return fmt.Sprintf("%s%016x-%016x-%d-%d", c.levelPrefix(k.level), uint64(k.min), uint64(k.max), created.UnixMilli(), size)
}

// parseName parses the last part of an object name of a level.
func parseName(level int, base string) (fileKey, fileName, bool) {
	parts := strings.Split(base, "-")
	if len(parts) != 4 || len(parts[0]) != 16 || len(parts[1]) != 16 {
		return fileKey{}, fileName{}, false
	}
	lo, err1 := strconv.ParseUint(parts[0], 16, 64)
	hi, err2 := strconv.ParseUint(parts[1], 16, 64)
	ms, err3 := strconv.ParseInt(parts[2], 10, 64)
	size, err4 := strconv.ParseInt(parts[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || lo == 0 || lo > hi || size < ltx.HeaderSize ||
		fmt.Sprintf("%016x-%016x-%d-%d", lo, hi, ms, size) != base { // one name per file
		return fileKey{}, fileName{}, false
	}
	return fileKey{level, ltx.TXID(lo), ltx.TXID(hi)}, fileName{created: time.UnixMilli(ms).UTC(), size: size}, true
}

// level returns the files of level, listing them from the target the first
// time. c.mu must be held.
func (c *Client) level(ctx context.Context, level int) (map[fileKey]fileName, error) {
	if files, ok := c.levels[level]; ok {
		return files, nil
	}
	prefix := c.levelPrefix(level)
	names, err := c.target.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("stream: list: %w", err)
	}
	files := map[fileKey]fileName{}
	for _, n := range names {
		k, f, ok := parseName(level, strings.TrimPrefix(n, prefix))
		if !ok {
			continue // not a stream object; it cannot be restored from
		}
		f.name = n
		c.add(files, k, f)
	}
	c.levels[level] = files
	return files, nil
}

// add records f as the object of the file k, unless an older object holds
// the same file (a snapshot taken twice at one position).
func (c *Client) add(files map[fileKey]fileName, k fileKey, f fileName) {
	if old, ok := files[k]; ok && !f.created.Before(old.created) {
		return
	}
	files[k] = f
}

// LTXFiles returns the files of level whose MinTXID is seek or more, in
// TXID order. Their CreatedAt is the time in their LTX header (whatever
// useMetadata), so restores to a point in time are exact.
func (c *Client) LTXFiles(ctx context.Context, level int, seek ltx.TXID, useMetadata bool) (ltx.FileIterator, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	files, err := c.level(ctx, level)
	if err != nil {
		return nil, err
	}
	infos := make([]*ltx.FileInfo, 0, len(files))
	for k, f := range files {
		if k.min < seek {
			continue
		}
		infos = append(infos, &ltx.FileInfo{Level: level, MinTXID: k.min, MaxTXID: k.max, Size: f.size, CreatedAt: f.created})
	}
	return ltx.NewFileInfoSliceIterator(infos), nil
}

// OpenLTXFile returns size bytes (all if 0) of the LTX file from offset. It
// reads and opens the whole object and checks that it is the file its name
// says. It returns an error wrapping os.ErrNotExist if there is no such
// file, and backup.ErrCorrupt if its object does not open.
func (c *Client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	k := fileKey{level, minTXID, maxTXID}
	c.mu.Lock()
	files, err := c.level(ctx, level)
	f, ok := files[k]
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("stream: ltx file %d/%s: %w", level, ltx.FormatFilename(minTXID, maxTXID), os.ErrNotExist)
	}
	data, err := c.read(ctx, k, f)
	if err != nil {
		return nil, err
	}
	if offset < 0 || offset > int64(len(data)) {
		return nil, fmt.Errorf("stream: ltx file %s: offset %d out of range", f.name, offset)
	}
	data = data[offset:]
	if size > 0 && size < int64(len(data)) {
		data = data[:size]
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// read reads, opens and checks the object f of the file k.
func (c *Client) read(ctx context.Context, k fileKey, f fileName) ([]byte, error) {
	obj, err := c.target.Get(ctx, f.name)
	if errors.Is(err, backup.ErrNotFound) {
		return nil, fmt.Errorf("stream: %w: %w", err, os.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	data, err := c.keys.OpenStream(f.name, obj)
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	if err := checkFile(k, f, data); err != nil {
		return nil, fmt.Errorf("stream: object %s: %w: %v", f.name, backup.ErrCorrupt, err)
	}
	return data, nil
}

// checkFile checks that data is the LTX file of k and f: its length, its
// TXIDs and its time. (The seal already binds it to its name: this catches
// a writer that named a file wrongly.)
func checkFile(k fileKey, f fileName, data []byte) error {
	if int64(len(data)) != f.size {
		return fmt.Errorf("size %d, its name says %d", len(data), f.size)
	}
	var hdr ltx.Header
	if err := hdr.UnmarshalBinary(data[:ltx.HeaderSize]); err != nil {
		return err
	}
	if err := hdr.Validate(); err != nil {
		return err
	}
	if hdr.MinTXID != k.min || hdr.MaxTXID != k.max || hdr.Timestamp != f.created.UnixMilli() {
		return errors.New("its header does not match its name")
	}
	return nil
}

// WriteLTXFile seals the LTX file read from r and stores it.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("stream: read ltx file: %w", err)
	}
	if len(data) < ltx.HeaderSize {
		return nil, fmt.Errorf("stream: ltx file %d/%s is cut short", level, ltx.FormatFilename(minTXID, maxTXID))
	}
	var hdr ltx.Header
	if err := hdr.UnmarshalBinary(data[:ltx.HeaderSize]); err != nil {
		return nil, fmt.Errorf("stream: ltx file %d/%s: %w", level, ltx.FormatFilename(minTXID, maxTXID), err)
	}
	if hdr.MinTXID != minTXID || hdr.MaxTXID != maxTXID {
		return nil, fmt.Errorf("stream: ltx file %d/%s: its header says %s", level, ltx.FormatFilename(minTXID, maxTXID), ltx.FormatFilename(hdr.MinTXID, hdr.MaxTXID))
	}
	k := fileKey{level, minTXID, maxTXID}
	f := fileName{created: time.UnixMilli(hdr.Timestamp).UTC(), size: int64(len(data))}
	f.name = c.objectName(k, f.created, f.size)
	obj, err := c.keys.SealStream(c.rand, f.name, data)
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	switch err := c.target.Put(ctx, f.name, obj); {
	case errors.Is(err, backup.ErrExist):
		// A retried upload: the object was stored, its answer lost.
		old, rerr := c.read(ctx, k, f)
		if rerr != nil || !bytes.Equal(old, data) {
			return nil, fmt.Errorf("stream: %s holds another file: %w", f.name, err)
		}
	case err != nil:
		return nil, fmt.Errorf("stream: %w", err)
	}
	c.mu.Lock()
	if files, ok := c.levels[level]; ok {
		c.add(files, k, f)
	}
	c.mu.Unlock()
	return &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: f.size, CreatedAt: f.created}, nil
}

// DeleteLTXFiles deletes the objects of the files a. An object the target
// refuses to delete yet (backup.ErrRetained) stays in the target, for
// restores, but leaves the Client's listing: for Litestream it is deleted.
// A later Client (the next start) lists it again, and Litestream asks
// again. A missing object counts as deleted.
func (c *Client) DeleteLTXFiles(ctx context.Context, a []*ltx.FileInfo) error {
	for _, info := range a {
		k := fileKey{info.Level, info.MinTXID, info.MaxTXID}
		c.mu.Lock()
		files, err := c.level(ctx, info.Level)
		f, ok := files[k]
		c.mu.Unlock()
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		err = c.target.Delete(ctx, f.name)
		if err != nil && !errors.Is(err, backup.ErrRetained) && !errors.Is(err, backup.ErrNotFound) {
			return fmt.Errorf("stream: %w", err)
		}
		c.mu.Lock()
		delete(files, k)
		if errors.Is(err, backup.ErrRetained) {
			c.logger.Debug("the target keeps an object until its retention ends", "object", f.name)
		}
		c.mu.Unlock()
	}
	return nil
}

// DeleteAll deletes every object of the stream the target lets go.
func (c *Client) DeleteAll(ctx context.Context) error {
	for level := 0; level <= litestream.SnapshotLevel; level++ {
		it, err := c.LTXFiles(ctx, level, 0, false)
		if err != nil {
			return err
		}
		var infos []*ltx.FileInfo
		for it.Next() {
			infos = append(infos, it.Item())
		}
		it.Close()
		if err := c.DeleteLTXFiles(ctx, infos); err != nil {
			return err
		}
	}
	return nil
}
