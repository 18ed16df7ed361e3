package stream_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/benbjohnson/litestream"
	"github.com/phivault/phivault/backup"
	"github.com/phivault/phivault/backup/stream"
	"github.com/superfly/ltx"
)

// mustStreamedFile streams v's database once and returns a client of its
// stream and the first LTX file in it, with its bytes.
func mustStreamedFile(t *testing.T, v *testVault) (*stream.Client, *ltx.FileInfo, []byte) {
	t.Helper()
	ctx := context.Background()
	s := v.mustStream(t)
	if _, err := v.db.Exec("INSERT INTO r (id, data) VALUES (1, 'x')"); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	c := stream.NewClient(v.target, v.keys, "phivault.db")
	infos, err := litestream.FindLTXFiles(ctx, c, 0, false, func(*ltx.FileInfo) (bool, error) { return true, nil })
	if err != nil || len(infos) == 0 {
		t.Fatalf("LTXFiles(0) = %v, %v; want the stream's files", infos, err)
	}
	info := infos[0]
	r, err := c.OpenLTXFile(ctx, 0, info.MinTXID, info.MaxTXID, 0, 0)
	if err != nil {
		t.Fatalf("OpenLTXFile = %v", err)
	}
	data, _ := io.ReadAll(r)
	if int64(len(data)) != info.Size || info.CreatedAt.IsZero() {
		t.Fatalf("listed size %d and time %v; the file has %d bytes", info.Size, info.CreatedAt, len(data))
	}
	return c, info, data
}

// TestClient_WriteLTXFile checks that a retried upload of the same file
// is accepted and a different file under the same name refused.
func TestClient_WriteLTXFile(t *testing.T) {
	ctx := context.Background()
	v := mustTestVault(t)
	c, info, data := mustStreamedFile(t, v)
	t.Run("Retried", func(t *testing.T) {
		if _, err := c.WriteLTXFile(ctx, 0, info.MinTXID, info.MaxTXID, bytesReader(data)); err != nil {
			t.Errorf("WriteLTXFile(the same file again) = %v, want accepted", err)
		}
	})
	t.Run("ErrExist", func(t *testing.T) {
		other := append([]byte(nil), data...)
		other[ltx.HeaderSize+10] ^= 1 // same header and size: same name
		if _, err := c.WriteLTXFile(ctx, 0, info.MinTXID, info.MaxTXID, bytesReader(other)); !errors.Is(err, backup.ErrExist) {
			t.Errorf("WriteLTXFile(another file, same name) = %v, want ErrExist", err)
		}
	})
}

// TestClient_DeleteLTXFiles checks that a deletion the target refuses
// (retention) is reported as done and leaves the object, and that one
// past the retention deletes it.
func TestClient_DeleteLTXFiles(t *testing.T) {
	ctx := context.Background()
	v := mustTestVault(t)
	c, info, _ := mustStreamedFile(t, v)
	count := func() int {
		infos, err := litestream.FindLTXFiles(ctx, stream.NewClient(v.target, v.keys, "phivault.db"), 0, false,
			func(i *ltx.FileInfo) (bool, error) { return i.MinTXID == info.MinTXID, nil })
		if err != nil {
			t.Fatal(err)
		}
		return len(infos)
	}
	t.Run("ErrRetained", func(t *testing.T) {
		if err := c.DeleteLTXFiles(ctx, []*ltx.FileInfo{info}); err != nil {
			t.Fatalf("DeleteLTXFiles(a young object) = %v, want nil", err)
		}
		if count() != 1 {
			t.Errorf("the young object is gone; the target should have kept it")
		}
		it, err := c.LTXFiles(ctx, 0, info.MinTXID, false)
		if err != nil {
			t.Fatal(err)
		}
		for it.Next() {
			if it.Item().MinTXID == info.MinTXID {
				t.Errorf("LTXFiles after a refused deletion lists the file; for Litestream it is deleted")
			}
		}
		it.Close()
	})
	t.Run("OK", func(t *testing.T) {
		old := &backup.Dir{Path: v.target.Path, Now: func() time.Time { return time.Now().Add(backup.DefaultRetention + time.Hour) }}
		c := stream.NewClient(old, v.keys, "phivault.db")
		if err := c.DeleteLTXFiles(ctx, []*ltx.FileInfo{info}); err != nil {
			t.Fatalf("DeleteLTXFiles(an object past its retention) = %v", err)
		}
		if count() != 0 {
			t.Errorf("the object past its retention is still there")
		}
	})
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
