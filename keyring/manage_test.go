package keyring_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/keyring"
)

// TestRetireFile_History retires a compromised KEK version and checks that
// the key file keeps a record of it (created, retired, compromised) without
// its key, that the version no longer unwraps, that a retired version can
// be marked compromised later, and that its id is never reused.
func TestRetireFile_History(t *testing.T) {
	ctx := context.Background()
	created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	retired := created.Add(48 * time.Hour)
	opts := testOptions
	opts.Now = func() time.Time { return created }
	path := t.TempDir() + "/keys.age"
	if err := keyring.CreateFile(path, testPassphrase, opts); err != nil {
		t.Fatal(err)
	}
	k1, err := keyring.OpenFile(path, testPassphrase, opts)
	if err != nil {
		t.Fatal(err)
	}
	kek1 := keyring.KEKForTest(k1, "file:1")
	_, wrapped, err := k1.WrapKey(ctx, keyName, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"file:2", "file:3"} {
		if got, err := keyring.RotateFile(path, testPassphrase, opts); err != nil || string(got) != id {
			t.Fatalf("RotateFile = %q, %v; want %s", got, err, id)
		}
	}
	exposed := created.Add(time.Hour)
	if err := keyring.MarkCompromisedFile(path, testPassphrase, "file:1", exposed, opts); err != nil {
		t.Fatal(err)
	}
	opts.Now = func() time.Time { return retired }
	if err := keyring.RetireFile(path, testPassphrase, []phivault.KeyID{"file:1", "file:2"}, opts); err != nil {
		t.Fatal(err)
	}
	// An exposure of file:2 found out after its retirement.
	later := retired.Add(24 * time.Hour)
	if err := keyring.MarkCompromisedFile(path, testPassphrase, "file:2", later, opts); err != nil {
		t.Fatalf("MarkCompromisedFile(retired) = %v", err)
	}
	if err := keyring.MarkCompromisedFile(path, testPassphrase, "file:9", later, opts); !errors.Is(err, keyring.ErrUnknownKEK) {
		t.Errorf("MarkCompromisedFile(unknown) = %v, want ErrUnknownKEK", err)
	}

	k, err := keyring.OpenFile(path, testPassphrase, opts)
	if err != nil {
		t.Fatal(err)
	}
	got := k.RetiredVersions()
	want := []keyring.KEKInfo{
		{ID: "file:1", Created: created, Retired: retired, Compromised: exposed},
		{ID: "file:2", Created: created, Retired: retired, Compromised: later},
	}
	if len(got) != len(want) {
		t.Fatalf("RetiredVersions() = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("RetiredVersions()[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if v := k.Versions(); len(v) != 1 || v[0].ID != "file:3" || !v[0].Retired.IsZero() {
		t.Errorf("Versions() = %+v, want only file:3", v)
	}
	if _, err := k.UnwrapKey(ctx, "file:1", keyName, wrapped); !errors.Is(err, keyring.ErrUnknownKEK) {
		t.Errorf("UnwrapKey(retired) = %v, want ErrUnknownKEK", err)
	}
	// The record holds no key material.
	plain, err := keyring.PlaintextForTest(path, testPassphrase)
	if err != nil {
		t.Fatal(err)
	}
	var kf struct {
		Retired []map[string]any `json:"retired"`
	}
	if err := json.Unmarshal(plain, &kf); err != nil {
		t.Fatal(err)
	}
	for _, r := range kf.Retired {
		if _, ok := r["key"]; ok {
			t.Errorf("retired record %v carries a key", r)
		}
	}
	if bytes.Contains(plain, kek1) || bytes.Contains(plain, []byte(base64.StdEncoding.EncodeToString(kek1))) {
		t.Error("the key file still holds the retired KEK")
	}
	// A new version never reuses a retired id.
	if id, err := keyring.RotateFile(path, testPassphrase, opts); err != nil || id != "file:4" {
		t.Errorf("RotateFile after retiring = %q, %v; want file:4", id, err)
	}
}
