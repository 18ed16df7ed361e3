//go:build !linux

package auditlog

import "os"

// datasync flushes f to stable storage.
func datasync(f *os.File) error { return f.Sync() }

// A syncer flushes journal segments; on this system, with f.Sync.
type syncer struct{}

func newSyncer() *syncer { return &syncer{} }

func (s *syncer) datasync(f *os.File) error { return datasync(f) }

func (s *syncer) close() {}
