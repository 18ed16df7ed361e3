package backup

import (
	"context"
	"errors"
)

// Errors of targets and of restores. Callers branch on them with
// errors.Is; the messages name objects and files, never their contents.
var (
	ErrNotFound  = errors.New("not found")
	ErrExist     = errors.New("already exists")
	ErrRetained  = errors.New("retained: too young to delete")
	ErrCorrupt   = errors.New("corrupt")
	ErrWrongKey  = errors.New("no given identity opens the backup keys")
	ErrSignature = errors.New("manifest signature does not verify")
)

// A Target stores a backup's objects. Objects are write-once: a name,
// once written, always holds the same bytes until it is deleted, and
// deletion is refused during the retention period.
//
// Names are slash-separated paths of lowercase letters, digits, "-" and
// "_": "keys", "chunks/<id>", "snapshots/<id>".
//
// Implementations are safe for concurrent use by multiple goroutines.
type Target interface {
	// Put stores data as name. It returns ErrExist, and changes nothing,
	// if name exists. It MUST NOT return before the object is durable.
	Put(ctx context.Context, name string, data []byte) error
	// Get returns the object name, or ErrNotFound.
	Get(ctx context.Context, name string) ([]byte, error)
	// List returns the names of the objects under prefix ("chunks/"), in
	// no particular order.
	List(ctx context.Context, prefix string) ([]string, error)
	// Delete removes the object name. It returns ErrRetained if the object
	// is younger than the target's retention, and ErrNotFound if there is
	// no such object.
	Delete(ctx context.Context, name string) error
}
