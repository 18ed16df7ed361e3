package backup_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/phivault/phivault/backup"
)

// FuzzReadMark feeds changed mark objects to ReadMark: it never panics,
// and accepts only the object as written. Prune decides on marks.
func FuzzReadMark(f *testing.F) {
	ctx := context.Background()
	v := mustTestVault(f)
	target := &memTarget{objects: map[string][]byte{}}
	keysObj, err := os.ReadFile(filepath.Join(v.target.Path, "keys"))
	if err != nil {
		f.Fatal(err)
	}
	target.objects["keys"] = keysObj
	res, err := backup.Backup(ctx, v.dir, target, backup.Options{Keys: v.keys, Signer: v.signer})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := backup.Verify(ctx, target, v.keys, res.Snapshot, backup.VerifyOptions{Verifier: v.verifier}); err != nil {
		f.Fatal(err)
	}
	name := "verified/" + res.Snapshot
	good := target.objects[name]
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, obj []byte) {
		tt := &memTarget{objects: map[string][]byte{name: obj}}
		_, err := backup.ReadMark(ctx, tt, v.keys, res.Snapshot)
		if err == nil && !bytes.Equal(obj, good) {
			t.Fatalf("ReadMark accepted a changed mark object")
		}
	})
}
