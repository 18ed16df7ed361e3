package backup_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"filippo.io/age"
	"github.com/phivault/phivault/backup"
)

// memTarget is a Target in memory, for the fuzz target: it stores objects
// as given, so the fuzzer's bytes reach the decryption path unchanged.
type memTarget struct {
	mu      sync.Mutex
	objects map[string][]byte
}

func (m *memTarget) Put(ctx context.Context, name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[name]; ok {
		return backup.ErrExist
	}
	m.objects[name] = bytes.Clone(data)
	return nil
}

func (m *memTarget) Get(ctx context.Context, name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objects[name]
	if !ok {
		return nil, backup.ErrNotFound
	}
	return bytes.Clone(b), nil
}

func (m *memTarget) List(ctx context.Context, prefix string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for n := range m.objects {
		if len(n) > len(prefix) && n[:len(prefix)] == prefix {
			out = append(out, n)
		}
	}
	return out, nil
}

func (m *memTarget) Delete(ctx context.Context, name string) error { return backup.ErrRetained }

// FuzzReadManifest feeds changed snapshot objects to ReadManifest: it
// never panics, and accepts only the object as written.
func FuzzReadManifest(f *testing.F) {
	v := mustTestVault(f)
	target := &memTarget{objects: map[string][]byte{}}
	keysObj, err := os.ReadFile(filepath.Join(v.target.Path, "keys"))
	if err != nil {
		f.Fatal(err)
	}
	target.objects["keys"] = keysObj
	res, err := backup.Backup(context.Background(), v.dir, target, backup.Options{Keys: v.keys, Signer: v.signer})
	if err != nil {
		f.Fatal(err)
	}
	name := "snapshots/" + res.Snapshot
	good := target.objects[name]
	keys, err := backup.OpenKeys(context.Background(), target, age.Identity(v.identity))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	junk := make([]byte, 100)
	rand.Read(junk)
	f.Add(junk)
	f.Fuzz(func(t *testing.T, obj []byte) {
		tt := &memTarget{objects: map[string][]byte{name: obj}}
		_, err := backup.ReadManifest(context.Background(), tt, keys, res.Snapshot, v.verifier)
		if err == nil && !bytes.Equal(obj, good) {
			t.Fatalf("ReadManifest accepted a changed snapshot object")
		}
	})
}
