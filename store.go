package phivault

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Token is a blind-index token: HMAC-SHA256(index key, parameter ‖ 0x00 ‖
// normalized value) truncated to 16 bytes. It reveals equality, nothing else.
type Token [16]byte

// SealedResource is one stored version as the Store sees it: ids, times and
// ciphertext. Ciphertext is nil for a deletion tombstone.
type SealedResource struct {
	Type        string
	ID          string
	Version     int64
	LastUpdated time.Time
	Compartment string // patient id or ""
	Deleted     bool
	KeyID       string // id of the data-encryption key that sealed it
	Ciphertext  []byte
}

// LogValue logs ids only.
func (r *SealedResource) LogValue() slog.Value {
	return slog.GroupValue(slog.String("type", r.Type), slog.String("id", r.ID), slog.Int64("version", r.Version))
}

// ResourceFilter selects current, non-deleted versions.
type ResourceFilter struct {
	Types        []string  // resource types; empty means any
	IDs          []string  // if non-empty, only these ids
	Compartments []string  // if non-empty, only resources in these patient compartments
	Tokens       [][]Token // AND over the outer slice, OR within each inner slice
	// LastUpdated range: From inclusive, To exclusive; zero means unbounded.
	From, To  time.Time
	Ascending bool // order by LastUpdated then id; default newest first
	Offset    int
	Limit     int // 0 means no limit
}

// HistoryFilter selects versions, newest first.
type HistoryFilter struct {
	Type   string // required
	ID     string // "" for every resource of Type
	Since  time.Time
	Offset int
	Limit  int // 0 means no limit
}

// WrappedKey is a data-encryption key as stored: wrapped by a key-encryption
// key that only a Keyring holds.
type WrappedKey struct {
	ID      string // e.g. "patient/<id>", "shared", "index"
	KEKID   KeyID  // which key-encryption key wrapped it
	Wrapped []byte
	Created time.Time
	// Bound says that Wrapped is bound to ID (see Keyring): true for every
	// key wrapped since wraps were bound, false for older ones, which
	// unwrap with name "" until a rewrap binds them.
	Bound bool
}

// Store keeps sealed resource versions, their blind-index tokens, and wrapped
// keys. It never sees plaintext.
//
// Implementations are safe for concurrent use by multiple goroutines.
type Store interface {
	// Update runs fn in a read-write transaction. If fn returns an error,
	// none of its writes take effect. Implementations MUST NOT return nil
	// until every write of fn is durably committed; they may commit several
	// callers' transactions together (group commit). fn may be called more
	// than once, each time in a fresh transaction (a store may roll back a
	// group and run it again), so it must reset any results it sets and
	// have no effects outside tx. If fn shredded a compartment
	// (StoreTx.Shred) and the transaction committed, but the store could
	// not yet erase the destroyed keys' old bytes from its files, Update
	// returns an error wrapping ErrErasePending: the writes took effect.
	Update(ctx context.Context, fn func(StoreTx) error) error
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(StoreTx) error) error
	Close() error
}

// StoreTx is one transaction on a Store. It is not safe for concurrent use.
type StoreTx interface {
	// Current returns the newest version of a resource, which may be a
	// tombstone (Deleted). Returns ErrNotFound if the resource never existed.
	Current(ctx context.Context, typ, id string) (*SealedResource, error)
	// Version returns one version. Returns ErrNotFound if it does not exist.
	Version(ctx context.Context, typ, id string, version int64) (*SealedResource, error)
	// History returns versions newest first, and the total matching.
	History(ctx context.Context, f HistoryFilter) ([]*SealedResource, int, error)
	// Put appends a version and makes it current, replacing the resource's
	// tokens (a tombstone has none). r.Version must be one more than the
	// current version (1 for a new resource); otherwise Put returns an
	// *Error with code ECONFLICT and writes nothing.
	Put(ctx context.Context, r *SealedResource, tokens []Token) error
	// Find returns current, non-deleted versions matching f.
	Find(ctx context.Context, f ResourceFilter) ([]*SealedResource, error)
	// Count returns how many current, non-deleted versions match f,
	// ignoring Offset and Limit.
	Count(ctx context.Context, f ResourceFilter) (int, error)
	// CountCompartments returns how many current, non-deleted versions
	// matching f each compartment holds ("" for none), ignoring f's
	// order, Offset and Limit; compartments with no match are absent.
	CountCompartments(ctx context.Context, f ResourceFilter) (map[string]int, error)
	// Key returns a wrapped key. Returns ErrNotFound if there is none.
	Key(ctx context.Context, id string) (*WrappedKey, error)
	// PutKey stores k unless a key with k.ID exists, and returns the key now
	// stored under k.ID (k, or the one that was there first).
	PutKey(ctx context.Context, k *WrappedKey) (*WrappedKey, error)
	// ReplaceKey replaces the stored key old.ID with k (same ID), provided
	// the stored key still has old's KEKID, wrapped bytes and Bound (compare
	// and swap). Otherwise it returns an *Error with code ECONFLICT, or
	// ErrNotFound if there is no key old.ID, and writes nothing.
	ReplaceKey(ctx context.Context, old, k *WrappedKey) error
	// Keys returns wrapped keys in id order, filtered by f.
	Keys(ctx context.Context, f KeyFilter) ([]*WrappedKey, error)
	// KeyCounts returns how many wrapped keys each key-encryption key wraps.
	KeyCounts(ctx context.Context) (map[KeyID]int, error)

	// KeyVersions returns the stored versions of key id, oldest first:
	// id itself is version 1 and "id#2", "id#3", … are later versions
	// (see [KeyVersionID]); the last one is the current version. It
	// returns an empty slice, not an error, if there are none. In a
	// read-write transaction the keys returned cannot be deleted
	// (DeleteKey, Shred) by another transaction until this one ends, as a
	// foreign key would hold them, so a version sealed under one of them
	// is never stored after its key was destroyed.
	KeyVersions(ctx context.Context, id string) ([]*WrappedKey, error)
	// DeleteKey deletes the wrapped key id, provided no stored version is
	// sealed under it (SealedResource.KeyID == id). Otherwise it returns
	// an *Error with code ECONFLICT, or ErrNotFound if there is no key id,
	// and writes nothing.
	DeleteKey(ctx context.Context, id string) error
	// SealedUnder returns up to limit stored versions sealed under the
	// data-encryption key keyID (all history, never tombstones), in no
	// particular order, and how many there are in all. limit 0 means no
	// limit.
	SealedUnder(ctx context.Context, keyID string, limit int) ([]*SealedResource, int, error)
	// Reseal replaces the key id and ciphertext of the stored version
	// old.Type/old.ID/old.Version with r's, provided the stored version is
	// still sealed under old.KeyID (compare and swap). r must have old's
	// type, id, version, time and compartment and must not be a
	// tombstone; otherwise Reseal returns an *Error with code EINVALID.
	// It returns ErrNotFound if the version does not exist and an *Error
	// with code ECONFLICT if it is sealed under another key, and then
	// writes nothing. Tokens and the current pointer are untouched.
	Reseal(ctx context.Context, old, r *SealedResource) error

	// Shred crypto-shreds a patient compartment, atomically: it deletes
	// the compartment's wrapped keys ("patient/<compartment>" and its later
	// versions "patient/<compartment>#n") and the
	// blind-index tokens of every resource in the compartment, takes those
	// resources out of Find and Count, and records the compartment as
	// shredded at time at. Versions (ciphertext) stay. Shredding twice
	// keeps the first time. After the commit, the store erases the old
	// bytes of every key destroyed by a shred (see ErrErasePending).
	Shred(ctx context.Context, compartment string, at time.Time) error
	// Shredded reports whether compartment was shredded, and when.
	Shredded(ctx context.Context, compartment string) (time.Time, bool, error)

	// ReindexPending returns, in name order, the resource types whose
	// stored tokens predate a change in what is indexed (a new search
	// parameter or modifier): a migration lists them, and until they are
	// retokened, searches miss what the change indexes in their older
	// resources. It returns an empty slice, not an error, if there are
	// none.
	ReindexPending(ctx context.Context) ([]string, error)
	// Retoken replaces the blind-index tokens of version of typ/id with
	// tokens, provided that version is still current, is not a tombstone
	// and is not in a shredded compartment (compare and swap): those keep
	// no tokens. Otherwise it returns an *Error with code ECONFLICT, or
	// ErrNotFound if the resource never existed, and writes nothing.
	// Versions, ciphertext and which version is current are untouched.
	// Implementations MUST order Retoken with a Put of the same resource
	// in another transaction so that whichever commits last leaves
	// exactly its own tokens.
	Retoken(ctx context.Context, typ, id string, version int64, tokens []Token) error
	// ReindexDone takes typ off ReindexPending, once every current
	// version of typ has been retokened. It does nothing if typ is not
	// pending.
	ReindexDone(ctx context.Context, typ string) error
}

// KeyFilter selects wrapped keys.
type KeyFilter struct {
	After     string // only ids greater than After (paging)
	ExceptKEK KeyID  // if set, only keys not wrapped by this KEK
	KEK       KeyID  // if set, only keys wrapped by this KEK
	Unbound   bool   // if set, only keys not bound to their id (Bound false)
	Limit     int    // 0 means no limit
}

// ErrErasePending is in the chain of the error an Update returns when its
// transaction shredded a compartment (StoreTx.Shred) and COMMITTED, but the
// store could not yet erase the destroyed keys' old bytes from its files
// (SQLite's write-ahead log, PostgreSQL's old file of the key table; see
// docs/crypto.md, "Crypto-shredding"). The shred stands: callers MUST
// report it as done, not failed. The store erases again after its next
// shred and when the server starts; the rest of the chain says why it
// could not (for the operator, not for API callers).
var ErrErasePending = &Error{Code: EUNAVAILABLE, Message: "The patient was crypto-shredded, but erasing the destroyed key's old bytes " +
	"from the database files is pending; it is retried at the next shred and when the server starts."}

// ErrShredded is returned for anything in a crypto-shredded patient
// compartment: its records were erased and can never be read or written
// again.
var ErrShredded = &Error{Code: EGONE, Message: "This patient's records were erased (crypto-shredded)."}

// KeyVersionID returns the id of version n of key base: base itself for
// n <= 1, else base + "#" + n, e.g. "patient/123#2". Key versions let a
// data-encryption key be replaced (re-encrypting what it sealed) while
// records sealed under the old and the new version coexist.
func KeyVersionID(base string, n int) string {
	if n <= 1 {
		return base
	}
	return base + "#" + strconv.Itoa(n)
}

// ParseKeyVersionID splits a key id made by KeyVersionID into its base and
// version number. An id without "#" is version 1 of itself; ok is false if
// what follows "#" is not a number of at least 2 without leading zeros.
func ParseKeyVersionID(id string) (base string, n int, ok bool) {
	base, num, found := strings.Cut(id, "#")
	if !found {
		return id, 1, true
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 2 || strconv.Itoa(n) != num {
		return "", 0, false
	}
	return base, n, true
}
