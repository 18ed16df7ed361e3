package auditlog_test

import (
	"context"
	"sync"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/internal/storetest"
	"github.com/phivault/phivault/mock"
	"golang.org/x/mod/sumdb/tlog"
)

// sizeStorage is an auditlog.Storage that keeps only its size and the
// hashes a Log reads back at Open, so that a benchmark measures the Log.
type sizeStorage struct {
	mu sync.Mutex
	n  int64
}

func (s *sizeStorage) AuditSize(ctx context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n, nil
}

func (s *sizeStorage) AppendAudit(ctx context.Context, start int64, data [][]byte, hashes []tlog.Hash) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n += int64(len(data))
	return nil
}

func (s *sizeStorage) ReadAuditHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	return make([]tlog.Hash, len(indexes)), nil
}

func (s *sizeStorage) ReadAuditEntries(ctx context.Context, start, end int64) ([][]byte, error) {
	return make([][]byte, end-start), nil
}

// BenchmarkRecordService_Read measures the audit layer's own cost per
// audited read, one request at a time (every group commit holds one
// entry): building the entry, encoding, hashing it into the tree and the
// hand-off to the committer, on a storage that does no I/O.
func BenchmarkRecordService_Read(b *testing.B) {
	ctx := reqCtx()
	signer, _ := storetest.NewSigner(b)
	l := auditlog.New(&sizeStorage{}, "phivault-bench/audit", signer)
	l.CheckpointInterval = -1
	if err := l.Open(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	next := &mock.RecordService{ReadFn: func(ctx context.Context, typ, id string) (*phivault.Resource, error) { return obs, nil }}
	rs := auditlog.NewRecordService(next, l)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rs.Read(ctx, "Observation", "o1"); err != nil {
			b.Fatal(err)
		}
	}
}
