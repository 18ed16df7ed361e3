package restoredrill

import (
	"fmt"
	"path/filepath"

	"github.com/phivault/phivault/internal/jsonl"
)

// Folder is the folder of a data folder that holds the restore drills'
// history and, while a drill runs, its scratch folder (hidden, so that
// backups leave it out).
const Folder = "restore-drills"

// HistoryFile is the name of the history file in Folder.
const HistoryFile = "history.jsonl"

// History keeps restore drill reports, one JSON line each, in a file
// readable by its owner only. Append is safe for use by one process at a
// time.
type History struct {
	// Path is the history file; its folder is made (0700) on first use.
	Path string
}

// NewHistory returns the history kept in dataDir/restore-drills/.
func NewHistory(dataDir string) *History {
	return &History{Path: filepath.Join(dataDir, Folder, HistoryFile)}
}

// Append adds r to the history.
func (h *History) Append(r *Report) error {
	if err := jsonl.Append(h.Path, r); err != nil {
		return fmt.Errorf("restore drill history: %w", err)
	}
	return nil
}

// Read returns the reports in the history, oldest first; none if there is
// no history yet.
func (h *History) Read() ([]*Report, error) {
	out, err := jsonl.Read[Report](h.Path)
	if err != nil {
		return nil, fmt.Errorf("restore drill history %w", err)
	}
	return out, nil
}
