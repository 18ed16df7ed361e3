package auditlog

import (
	"context"
	"errors"
	"os"
	"sync"
)

// FileWitness appends each signed checkpoint, then an empty line, to a file
// and syncs it before returning; SplitCheckpoints reads the file back. It is
// safe for concurrent use by multiple goroutines.
type FileWitness struct {
	Path string
	mu   sync.Mutex
}

// Publish appends signedCheckpoint to the file.
func (w *FileWitness) Publish(ctx context.Context, signedCheckpoint []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	f, err := os.OpenFile(w.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(append([]byte(nil), signedCheckpoint...), '\n'))
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}
