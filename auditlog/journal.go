package auditlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// The journal is the durable staging area of a Log on a DeferredStorage:
// append-only segment files of framed entries, each entry with the index it
// will have in the tree. An Append returns once its entry is fsynced in the
// journal (and committed, not yet durably, in the storage); the storage is
// made durable now and then, after which old segments are removed. After a
// crash, entries in the journal but not in the storage are appended again
// at Open.
//
// A segment is named journal-<index of its first entry, 20 digits>.log and
// holds records:
//
//	length  uint32, big endian: length of data
//	crc     uint32, big endian: CRC-32C of index and data
//	index   uint64, big endian
//	data    the canonical entry
//
// Segments are zero-filled when made (a zero length ends the records). A
// record that is cut short or fails its CRC ends the journal: it, and
// anything after it, was never acknowledged (an fsync covers everything
// written before it).

const (
	journalHeader  = 16
	journalPrefix  = "journal-"
	journalSuffix  = ".log"
	maxJournalData = 1 << 24 // an entry is a few hundred bytes; larger means garbage
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// DefaultJournalSegment is the size after which the journal starts a new
// segment.
const DefaultJournalSegment = 16 << 20

// journalRecord is one entry read back from the journal.
type journalRecord struct {
	index int64
	data  []byte
}

// appendRecord appends the framing of data at index to b.
func appendRecord(b []byte, index int64, data []byte) []byte {
	var h [journalHeader]byte
	binary.BigEndian.PutUint32(h[0:4], uint32(len(data)))
	binary.BigEndian.PutUint64(h[8:16], uint64(index))
	crc := crc32.Update(0, castagnoli, h[8:16])
	crc = crc32.Update(crc, castagnoli, data)
	binary.BigEndian.PutUint32(h[4:8], crc)
	b = append(b, h[:]...)
	return append(b, data...)
}

// parseRecords returns the records of a segment up to the first one that is
// cut short or damaged, and the length of that valid prefix.
func parseRecords(b []byte) ([]journalRecord, int) {
	var out []journalRecord
	off := 0
	for len(b)-off >= journalHeader {
		n := int(binary.BigEndian.Uint32(b[off : off+4]))
		if n == 0 || n > maxJournalData || len(b)-off-journalHeader < n {
			break // the zero-filled rest, or a torn write
		}
		idx := b[off+8 : off+16]
		data := b[off+journalHeader : off+journalHeader+n]
		crc := crc32.Update(0, castagnoli, idx)
		crc = crc32.Update(crc, castagnoli, data)
		if crc != binary.BigEndian.Uint32(b[off+4:off+8]) {
			break
		}
		out = append(out, journalRecord{index: int64(binary.BigEndian.Uint64(idx)), data: data})
		off += journalHeader + n
	}
	return out, off
}

// zero reports whether b holds only zero bytes.
func zero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// journalSegment is a segment file and the index of its first entry.
type journalSegment struct {
	path  string
	first int64
}

// listSegments returns the segments in dir, oldest first.
func listSegments(dir string) ([]journalSegment, error) {
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []journalSegment
	for _, e := range names {
		name := e.Name()
		num, ok := strings.CutPrefix(name, journalPrefix)
		num, ok2 := strings.CutSuffix(num, journalSuffix)
		if !ok || !ok2 {
			continue
		}
		first, err := strconv.ParseInt(num, 10, 64)
		if err != nil || first < 0 {
			continue
		}
		segs = append(segs, journalSegment{path: filepath.Join(dir, name), first: first})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].first < segs[j].first })
	return segs, nil
}

func segmentPath(dir string, first int64) string {
	return filepath.Join(dir, fmt.Sprintf("%s%020d%s", journalPrefix, first, journalSuffix))
}

// readJournal returns the entries of the journal in dir with index size or
// more, which must follow on from size without a gap.
func readJournal(dir string, size int64) ([][]byte, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	next := size
	for i, s := range segs {
		b, err := os.ReadFile(s.path)
		if err != nil {
			return nil, err
		}
		recs, valid := parseRecords(b)
		if i < len(segs)-1 && !zero(b[valid:]) {
			// Only the newest segment can end in a torn write: the older
			// ones were fsynced before the next one was made, and end in
			// the rest of their zero fill.
			return nil, fmt.Errorf("auditlog: journal segment %s is damaged at byte %d", filepath.Base(s.path), valid)
		}
		for _, r := range recs {
			switch {
			case r.index < next:
				continue // in the storage already
			case r.index > next:
				return nil, fmt.Errorf("auditlog: journal skips from entry %d to %d", next, r.index)
			}
			out = append(out, r.data)
			next++
		}
	}
	return out, nil
}

// journal is the segment being written.
type journal struct {
	dir     string
	segSize int64
	f       *os.File
	first   int64 // index of the segment's first entry
	size    int64 // bytes written to f
	fill    int64 // bytes zero-filled in f
	buf     []byte
	sync    *syncer

	// The next segment is zero-filled in the background, as spareName,
	// so that a rotation does not stall the appends behind it.
	spare     chan *os.File // capacity 1: the prepared file, or nil if that failed
	spareBusy bool          // a preparation is running or its file waits in spare
}

// firstSegment is the zero-filled size of the first segment a journal
// makes; each next one doubles it, up to segSize, so that a log opened and
// closed quickly (as in tests) does not write segSize zeros.
const firstSegment = 1 << 20

// nextFill is the zero-filled size of the segment after the current one.
func (j *journal) nextFill() int64 {
	if j.f == nil {
		return min(j.segSize, firstSegment)
	}
	return min(j.segSize, 2*j.fill)
}

// spareName is the next segment while it is prepared; listSegments ignores
// it.
const spareName = "journal-next.tmp"

// openJournal starts a new segment whose first entry is index first,
// removing every older segment (the storage holds their entries durably).
func openJournal(dir string, first int64, segSize int64) (*journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auditlog: journal: %w", err)
	}
	j := &journal{dir: dir, segSize: segSize, spare: make(chan *os.File, 1), sync: newSyncer()}
	os.Remove(filepath.Join(dir, spareName)) // left by a crash
	if err := j.start(first); err != nil {
		return nil, err
	}
	return j, removeSegmentsBefore(dir, first)
}

// start creates the segment for entries from first on and makes its
// directory entry durable.
func (j *journal) start(first int64) error {
	path := segmentPath(j.dir, first)
	fill := j.nextFill()
	var f *os.File
	if j.spareBusy {
		if f = <-j.spare; f != nil {
			if err := os.Rename(filepath.Join(j.dir, spareName), path); err != nil {
				f.Close()
				f = nil
			}
		}
		j.spareBusy = false
	}
	if f == nil {
		var err error
		if f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
			return fmt.Errorf("auditlog: journal: %w", err)
		}
		if err := zeroFill(f, fill); err != nil {
			f.Close()
			return err
		}
	}
	if err := syncDir(j.dir); err != nil {
		f.Close()
		return err
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, j.first, j.size, j.fill = f, first, 0, fill
	return nil
}

// prepare zero-fills the next segment in the background.
func (j *journal) prepare() {
	if j.spareBusy {
		return
	}
	j.spareBusy = true
	fill := j.nextFill()
	go func() {
		f, err := os.OpenFile(filepath.Join(j.dir, spareName), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err == nil {
			if err = zeroFill(f, fill); err != nil {
				f.Close()
			}
		}
		if err != nil {
			f = nil
		}
		j.spare <- f
	}()
}

// write appends the entries data at indexes start… to the segment, without
// syncing.
func (j *journal) write(start int64, data [][]byte) error {
	b := j.buf[:0]
	for i, d := range data {
		b = appendRecord(b, start+int64(i), d)
	}
	j.buf = b
	if _, err := j.f.Write(b); err != nil {
		return fmt.Errorf("auditlog: journal write: %w", err)
	}
	j.size += int64(len(b))
	if j.size >= j.fill/2 {
		j.prepare()
	}
	return nil
}

// full reports whether the segment should be rotated: the next batch may
// not fit in its zero-filled part.
func (j *journal) full() bool { return j.size >= j.fill*7/8 }

// removeSegmentsBefore deletes the segments in dir older than the one
// starting at first.
func removeSegmentsBefore(dir string, first int64) error {
	segs, err := listSegments(dir)
	if err != nil {
		return fmt.Errorf("auditlog: journal: %w", err)
	}
	for _, s := range segs {
		if s.first < first {
			if err := os.Remove(s.path); err != nil {
				return fmt.Errorf("auditlog: journal: %w", err)
			}
		}
	}
	return nil
}

func (j *journal) close() error {
	j.sync.close()
	if j.spareBusy {
		if f := <-j.spare; f != nil {
			f.Close()
		}
		os.Remove(filepath.Join(j.dir, spareName))
		j.spareBusy = false
	}
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// zeroFill writes size zero bytes to f, fsyncs it and rewinds it, so that
// later writes overwrite allocated blocks: their fdatasync then needs no
// file system journal commit (measured: about half the latency of an
// fsync after an append).
func zeroFill(f *os.File, size int64) error {
	z := make([]byte, 1<<20)
	for n := int64(0); n < size; {
		k := min(int64(len(z)), size-n)
		if _, err := f.Write(z[:k]); err != nil {
			return fmt.Errorf("auditlog: journal: preallocate: %w", err)
		}
		n += k
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("auditlog: journal: preallocate: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("auditlog: journal: %w", err)
	}
	return nil
}

// syncDir fsyncs a directory, so that files created in it survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("auditlog: journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("auditlog: journal: sync dir: %w", err)
	}
	return nil
}
