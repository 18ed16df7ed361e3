package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/keyring"
	"github.com/phivault/phivault/sqlite"
)

// TestStatus_RetiredVersions checks that keys status keeps listing a
// retired KEK version, marked retired and with its compromise mark, so a
// breach analysis can see when the exposed version stopped protecting the
// live data.
func TestStatus_RetiredVersions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.age")
	pass := []byte("correct horse battery staple")
	t0 := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	now := t0
	opts := keyring.FileOptions{WorkFactor: 10, Now: func() time.Time { return now }}
	if err := keyring.CreateFile(path, pass, opts); err != nil {
		t.Fatal(err)
	}
	keys, err := keyring.OpenReloading(path, pass, opts)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(dir, "phivault.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now = t0.Add(24 * time.Hour)
	if _, err := keys.Rotate(pass); err != nil {
		t.Fatal(err)
	}
	exposed := t0.Add(2 * time.Hour)
	if err := keys.MarkCompromised(pass, "file:1", exposed); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(48 * time.Hour)
	// Nothing is stored under file:1, so the rewrap retires it.
	if _, err := rewrapAndRetire(ctx, db, &fileRotator{keys: keys, pass: pass}, slog.New(slog.DiscardHandler), nil); err != nil {
		t.Fatal(err)
	}
	if ids := keys.Keyring().IDs(); len(ids) != 1 || ids[0] != "file:2" {
		t.Fatalf("key file holds %v after retiring, want only file:2", ids)
	}
	st, err := statusOf(ctx, db, &fileRotator{keys: keys, pass: pass})
	if err != nil {
		t.Fatal(err)
	}
	// The status survives the admin API's JSON.
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	st = &keyStatus{}
	if err := json.Unmarshal(b, st); err != nil {
		t.Fatal(err)
	}
	var v1 *kekStatus
	for i := range st.Versions {
		if st.Versions[i].ID == "file:1" {
			v1 = &st.Versions[i]
		}
	}
	if v1 == nil || v1.Retired == nil || !v1.Retired.Equal(now) || v1.Compromised == nil || !v1.Compromised.Equal(exposed) || v1.Current || !v1.Created.Equal(t0) {
		t.Fatalf("status of file:1 = %+v, want retired at %v, compromised at %v", v1, now, exposed)
	}
	// Running the retirement again leaves the record alone.
	if _, err := rewrapAndRetire(ctx, db, &fileRotator{keys: keys, pass: pass}, slog.New(slog.DiscardHandler), nil); err != nil {
		t.Fatal(err)
	}
	if r := keys.Keyring().RetiredVersions(); len(r) != 1 || !r[0].Retired.Equal(now) {
		t.Errorf("RetiredVersions after a second run = %+v", r)
	}
	var out bytes.Buffer
	printStatus(&out, st, defaultMaxAge, now)
	var line string
	for l := range strings.Lines(out.String()) {
		if strings.HasPrefix(l, "file:1 ") {
			line = l
		}
	}
	if !strings.Contains(line, exposed.Format(time.RFC3339)) || !strings.Contains(line, now.Format(time.RFC3339)) ||
		!strings.Contains(out.String(), "RETIRED") {
		t.Errorf("keys status output lacks the retired, compromised file:1:\n%s", out.String())
	}
	// A retired compromised version wraps nothing: no rotation is due for it.
	if r := dueReasons(st, defaultMaxAge, now); len(r) != 0 {
		t.Errorf("dueReasons = %q, want none", r)
	}
}
