// Package block keeps the network blocks of incident response: addresses
// and networks whose requests the server refuses with 403 before any
// handler runs. Blocks are kept in their own SQLite file
// (internal/sqlitefile: WAL, an fsync at every commit, mode 0600) so they
// survive a restart, and in memory as a snapshot that [List.Blocked] reads
// without a lock: one map lookup per distinct prefix length.
//
// A block lasts until a time or until removed; expired blocks are ignored
// at once and pruned from the file on the next change or load. Each block
// names its origin, the incident action that made it (or "operator" for
// one added by hand), so that undoing the action removes its blocks and
// no other's.
//
// A List refuses blocks that would cut off everyone: a network of every
// address (0.0.0.0/0, ::/0), one holding a loopback address (the server's
// own host), and one overlapping a trusted reverse proxy (List.Protected),
// which would block every client behind the proxy.
package block

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/internal/sqlitefile"
)

//go:embed migrations/*.sql
var migrations embed.FS

// OriginOperator is the origin of a block added by an operator
// (phivault blocks add) rather than by an incident action.
const OriginOperator = "operator"

// Block is one blocked address or network.
type Block struct {
	ID      string
	Prefix  netip.Prefix // masked; a single address is a /32 or /128
	Created time.Time
	Until   time.Time // zero: until removed
	Origin  string    // the incident action id, or OriginOperator
}

// Active reports whether b is in force at now.
func (b *Block) Active(now time.Time) bool { return b.Until.IsZero() || now.Before(b.Until) }

// List is the set of blocks of a data folder: the SQLite file and the
// in-memory snapshot requests are checked against. Open it with Open; it
// is safe for concurrent use by multiple goroutines.
type List struct {
	// Protected are networks no block may overlap: the trusted reverse
	// proxies (server.Config.TrustedProxies). Set before first use.
	Protected []netip.Prefix
	// Now is the clock for expiry. Default time.Now.
	Now func() time.Time

	db      *sqlitefile.DB
	mu      sync.Mutex // serializes changes and reloads
	snap    atomic.Pointer[snapshot]
	refused atomic.Uint64
}

// Open opens (creating if needed) the blocks file at path and loads the
// blocks in force.
func Open(ctx context.Context, path string) (*List, error) {
	db, err := sqlitefile.Open(ctx, path, migrations, "migrations", 1)
	if err != nil {
		return nil, fmt.Errorf("block: %w", err)
	}
	l := &List{db: db}
	l.snap.Store(&snapshot{})
	if err := l.Load(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return l, nil
}

// Close closes the file. Blocked keeps answering from the last snapshot.
func (l *List) Close() error { return l.db.Close() }

func (l *List) now() time.Time {
	if l.Now == nil {
		return time.Now()
	}
	return l.Now()
}

// ParsePrefix reads an address (203.0.113.7, 2001:db8::1) or a network
// (10.1.0.0/16) and returns it as a masked prefix; an IPv4-mapped IPv6
// address is taken as its IPv4 address, as the server reads sources.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, phivault.Errorf(phivault.EINVALID, "%q is not an address or network.", s)
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, phivault.Errorf(phivault.EINVALID, "%q is not an address or network.", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Check refuses, with an EINVALID *phivault.Error saying why, a prefix
// that would block everyone, the server's own host, or a trusted proxy
// (and with it every client behind it).
func (l *List) Check(p netip.Prefix) error {
	switch {
	case p.Bits() == 0:
		return phivault.Errorf(phivault.EINVALID, "%s is every address; blocking it would refuse every client.", p)
	case p.Overlaps(netip.MustParsePrefix("127.0.0.0/8")) || p.Overlaps(netip.MustParsePrefix("::1/128")):
		return phivault.Errorf(phivault.EINVALID, "%s holds a loopback address; blocking it would refuse the server's own host.", p)
	}
	for _, t := range l.Protected {
		if p.Overlaps(t) {
			return phivault.Errorf(phivault.EINVALID, "%s overlaps the trusted proxy network %s; blocking it would refuse every client behind the proxy.", p, t)
		}
	}
	return nil
}

// Add blocks every prefix of prefixes until until (zero: until removed)
// for origin, all or none: a prefix that Check refuses fails the whole
// call with an EINVALID *phivault.Error saying why, and nothing is
// stored. The blocks are in force when Add returns.
func (l *List) Add(ctx context.Context, prefixes []netip.Prefix, until time.Time, origin string) ([]Block, error) {
	if len(prefixes) == 0 {
		return nil, phivault.Errorf(phivault.EINVALID, "No address or network to block.")
	}
	if origin == "" {
		return nil, phivault.Errorf(phivault.EINVALID, "A block needs an origin.")
	}
	now := l.now()
	if !until.IsZero() && !now.Before(until) {
		return nil, phivault.Errorf(phivault.EINVALID, "The block would end before it starts.")
	}
	out := make([]Block, len(prefixes))
	for i, p := range prefixes {
		if !p.IsValid() {
			return nil, phivault.Errorf(phivault.EINVALID, "An address or network to block is empty.")
		}
		p = p.Masked()
		if err := l.Check(p); err != nil {
			return nil, err
		}
		id, err := newID()
		if err != nil {
			return nil, err
		}
		out[i] = Block{ID: id, Prefix: p, Created: now, Until: until, Origin: origin}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.db.Write(ctx, func(tx *sql.Tx) error {
		for _, b := range out {
			if _, err := tx.ExecContext(ctx, `INSERT INTO blocks (id, prefix, created, until, origin) VALUES (?, ?, ?, ?, ?)`,
				b.ID, b.Prefix.String(), b.Created.UnixNano(), unixNano(b.Until), b.Origin); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("block: add: %w", err)
	}
	return out, l.loadLocked(ctx)
}

// Remove removes the block with id, or every block of origin id (an
// incident action's), and returns how many it removed; none is not an
// error. They are out of force when Remove returns.
func (l *List) Remove(ctx context.Context, id string) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	err := l.db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM blocks WHERE id = ? OR origin = ?`, id, id)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("block: remove: %w", err)
	}
	return int(n), l.loadLocked(ctx)
}

// Blocks returns the blocks in force, oldest first.
func (l *List) Blocks(ctx context.Context) ([]Block, error) {
	rows, err := l.db.R.QueryContext(ctx, `SELECT id, prefix, created, until, origin FROM blocks ORDER BY created, id`)
	if err != nil {
		return nil, fmt.Errorf("block: list: %w", err)
	}
	defer rows.Close()
	now := l.now()
	var out []Block
	for rows.Next() {
		var b Block
		var prefix string
		var created, until int64
		if err := rows.Scan(&b.ID, &prefix, &created, &until, &b.Origin); err != nil {
			return nil, fmt.Errorf("block: list: %w", err)
		}
		if b.Prefix, err = netip.ParsePrefix(prefix); err != nil {
			return nil, fmt.Errorf("block: list: block %s: %w", b.ID, err)
		}
		b.Created = time.Unix(0, created).UTC()
		if until != 0 {
			b.Until = time.Unix(0, until).UTC()
		}
		if b.Active(now) {
			out = append(out, b)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("block: list: %w", err)
	}
	return out, nil
}

// Load prunes expired blocks from the file and puts what it holds in
// force: after Open, and to take up changes another process (phivault
// blocks) made to the file.
func (l *List) Load(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.loadLocked(ctx)
}

func (l *List) loadLocked(ctx context.Context) error {
	now := l.now()
	if err := l.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM blocks WHERE until != 0 AND until <= ?`, now.UnixNano())
		return err
	}); err != nil {
		return fmt.Errorf("block: prune: %w", err)
	}
	list, err := l.Blocks(ctx)
	if err != nil {
		return err
	}
	l.snap.Store(newSnapshot(list))
	return nil
}

// Blocked reports whether requests from a are refused: a is in a block
// in force. It takes no lock and does not allocate; each true answer is
// counted (see Refused). An invalid a is not blocked.
func (l *List) Blocked(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	if l.snap.Load().blocked(a.Unmap().WithZone(""), l.now) {
		l.refused.Add(1)
		return true
	}
	return false
}

// Refused returns how many times Blocked answered true: the requests
// refused, for the metrics.
func (l *List) Refused() uint64 { return l.refused.Load() }

// snapshot is the blocks in force as Blocked reads them: for each
// address family, the distinct prefix lengths, longest first, and the
// blocks by prefix with the latest end of each (0: none).
type snapshot struct {
	v4, v6 family
}

type family struct {
	bits  []int
	until map[netip.Prefix]int64
}

func newSnapshot(list []Block) *snapshot {
	s := &snapshot{}
	for _, b := range list {
		f := &s.v4
		if b.Prefix.Addr().Is6() {
			f = &s.v6
		}
		if f.until == nil {
			f.until = map[netip.Prefix]int64{}
		}
		u := unixNano(b.Until)
		if old, ok := f.until[b.Prefix]; ok && (old == 0 || (u != 0 && u < old)) {
			u = old
		}
		f.bits = insertSorted(f.bits, b.Prefix.Bits())
		f.until[b.Prefix] = u
	}
	return s
}

// insertSorted inserts n into bits, kept longest first.
func insertSorted(bits []int, n int) []int {
	if slices.Contains(bits, n) {
		return bits
	}
	i := 0
	for i < len(bits) && bits[i] > n {
		i++
	}
	return slices.Insert(bits, i, n)
}

func (s *snapshot) blocked(a netip.Addr, now func() time.Time) bool {
	f := &s.v4
	if a.Is6() {
		f = &s.v6
	}
	for _, bits := range f.bits {
		p, err := a.Prefix(bits)
		if err != nil {
			continue
		}
		if u, ok := f.until[p]; ok && (u == 0 || now().UnixNano() < u) {
			return true
		}
	}
	return false
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func newID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("block: id: %w", err)
	}
	return "blk-" + hex.EncodeToString(b[:]), nil
}
