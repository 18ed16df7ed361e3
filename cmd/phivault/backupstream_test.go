package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

// streamHelperEnv carries the phivault arguments (JSON) to the process
// TestBackupStreamHelper runs them in, which the RPO test kills.
const streamHelperEnv = "PHIVAULT_TEST_STREAM_ARGS"

// TestBackupStreamHelper runs phivault with the arguments in
// streamHelperEnv, as a process of its own; without it, it does nothing.
func TestBackupStreamHelper(t *testing.T) {
	raw := os.Getenv(streamHelperEnv)
	if raw == "" {
		return
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), args, os.Stdout, os.Stderr); err != nil {
		fmt.Println("error:", err)
	}
}

// rpoWait is how long before the kill a write must have been acknowledged
// for the restore to be required to hold it.
const rpoWait = 5 * time.Second

// TestBackupStream_rpo serves a vault with -backup-stream in a process of
// its own, creates patients through the API, kills the process (SIGKILL:
// no final sync), restores the latest state with "phivault restore", and
// finds every patient acknowledged more than 5 s before the kill. It logs
// the measured RPO (kill time minus the acknowledgement of the first
// write missing) and the restore's rate.
func TestBackupStream_rpo(t *testing.T) {
	ctx := context.Background()
	d, witness := initTestData(t)
	root := t.TempDir()
	bk := filepath.Join(root, "backups")
	identity, _ := age.GenerateX25519Identity()
	idFile := filepath.Join(root, "backup-identity.txt")
	if err := os.WriteFile(idFile, []byte(identity.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, closeVault := openVault(t, d, witness) // unseal once: it makes the keys
	closeVault()
	token, err := newAdminToken(d)
	if err != nil {
		t.Fatal(err)
	}
	backupRun(t, "-data", string(d), "-to", bk, "-recipient", identity.Recipient().String())

	args, _ := json.Marshal([]string{"serve", "-data", string(d), "-audit-witness-file", witness,
		"-insecure-http", "-addr", "127.0.0.1:0", "-backup-stream", bk})
	cmd := exec.Command(os.Args[0], "-test.run=^TestBackupStreamHelper$")
	cmd.Env = append(os.Environ(), streamHelperEnv+"="+string(args))
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	lines := bufio.NewScanner(stdout)
	var base string
	for lines.Scan() {
		if u, ok := strings.CutPrefix(lines.Text(), "phivault serving "); ok {
			base = u
			break
		}
	}
	if base == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("serve did not start:\n%s", stderr.String())
	}
	go io.Copy(io.Discard, stdout)

	type ack struct {
		id        string
		start, at time.Time // when its POST started, when it was acknowledged
	}
	var acks []ack
	post := func(i int) error {
		req, _ := http.NewRequest("POST", base+"/Patient", strings.NewReader(`{"resourceType":"Patient","name":[{"family":"Streamson`+fmt.Sprint(i)+`"}]}`))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/fhir+json")
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var p struct{ ID string }
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("create = %d, %v", resp.StatusCode, err)
		}
		acks = append(acks, ack{p.ID, start, time.Now()})
		return nil
	}
	// The kill falls anywhere in a sync interval: the streamer's ticks
	// started with serve.
	deadline := time.Now().Add(rpoWait + 5*time.Second + rand.N(time.Second))
	for i := 0; time.Now().Before(deadline); i++ {
		if err := post(i); err != nil {
			t.Fatalf("create patient %d: %v\n%s", i, err, stderr.String())
		}
	}
	// Kill while writes go on: the last writes are in flight.
	killAt := time.Now()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true

	restored := dataDir(filepath.Join(root, "restored"))
	var out bytes.Buffer
	start := time.Now()
	if err := run(ctx, []string{"restore", "-from", bk, "-identity", idFile, "-data", string(restored), "-audit-witness-file", witness}, &out, io.Discard); err != nil {
		t.Fatalf("restore = %v\n%s", err, stderr.String())
	}
	took := time.Since(start)
	if !strings.Contains(out.String(), "phivault.db: from its stream") {
		t.Errorf("restore printed %q, want phivault.db restored from its stream", out.String())
	}
	have := restoredPatients(t, restored)
	var missing []ack
	for _, a := range acks {
		if !slices.Contains(have, a.id) {
			missing = append(missing, a)
		}
	}
	for _, a := range missing {
		if killAt.Sub(a.at) > rpoWait {
			t.Errorf("Patient/%s, acknowledged %v before the kill, is not in the restore", a.id, killAt.Sub(a.at).Round(time.Millisecond))
		}
	}
	// At a point in time: every patient acknowledged a sync interval or
	// more before it (the test allows rpoWait), none started after it.
	at := acks[len(acks)/2].at
	past := dataDir(filepath.Join(root, "restored-at"))
	if err := run(ctx, []string{"restore", "-from", bk, "-identity", idFile, "-data", string(past), "-at", at.Format(time.RFC3339Nano), "-audit-witness-file", witness}, io.Discard, io.Discard); err != nil {
		t.Fatalf("restore -at = %v", err)
	}
	pastHave := restoredPatients(t, past)
	for _, a := range acks {
		switch in := slices.Contains(pastHave, a.id); {
		case !in && a.at.Before(at.Add(-rpoWait)):
			t.Errorf("restore -at: Patient/%s, acknowledged %v before, is missing", a.id, at.Sub(a.at).Round(time.Millisecond))
		case in && a.start.After(at):
			t.Errorf("restore -at: Patient/%s, created %v after, is there", a.id, a.start.Sub(at).Round(time.Millisecond))
		}
	}

	rpo := time.Duration(0)
	if len(missing) > 0 {
		rpo = killAt.Sub(missing[0].at)
	}
	fi, _ := os.Stat(restored.database())
	t.Logf("rpo=%v writes=%d missing=%d restore=%v db_bytes=%d restore_rate=%.1fMB/s",
		rpo.Round(time.Millisecond), len(acks), len(missing), took.Round(time.Millisecond), fi.Size(), float64(fi.Size())/took.Seconds()/1e6)
}

// restoredPatients returns the ids of the patients in the restored
// folder's store.
func restoredPatients(t *testing.T, d dataDir) []string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: d.database()}).EscapedPath()+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT id FROM current WHERE type = 'Patient'")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestBackupStream_noKeys checks that serve refuses -backup-stream to a
// folder that no backup set up, saying what to do.
func TestBackupStream_noKeys(t *testing.T) {
	d, witness := initTestData(t)
	empty := filepath.Join(t.TempDir(), "backups")
	err := run(context.Background(), []string{"serve", "-data", string(d), "-audit-witness-file", witness,
		"-insecure-http", "-addr", "127.0.0.1:0", "-backup-stream", empty}, io.Discard, io.Discard)
	var h *hintError
	if !errors.As(err, &h) || !strings.Contains(err.Error(), "keys") || !strings.Contains(h.hint, "phivault backup") {
		t.Errorf("serve -backup-stream to an unset folder = %v, want refused with a hint to run phivault backup", err)
	}
}

// TestRestore_atFlag checks that restore refuses an -at that is not an
// RFC 3339 time, and -at with -snapshot, before reading the backup.
func TestRestore_atFlag(t *testing.T) {
	root := t.TempDir()
	identity, _ := age.GenerateX25519Identity()
	idFile := filepath.Join(root, "id.txt")
	os.WriteFile(idFile, []byte(identity.String()+"\n"), 0o600)
	base := []string{"restore", "-from", filepath.Join(root, "backups"), "-identity", idFile, "-data", filepath.Join(root, "restored"), "-audit-witness-file", filepath.Join(root, "witness")}
	tests := []struct {
		give []string
		want string
	}{
		{[]string{"-at", "yesterday"}, "RFC 3339"},
		{[]string{"-at", "2026-12-06T09:41:00Z", "-snapshot", "00112233445566778899aabbccddeeff"}, "not both"},
	}
	for _, tt := range tests {
		err := run(context.Background(), append(base, tt.give...), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("restore %v = %v, want an error saying %q", tt.give, err, tt.want)
		}
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Errorf("a refused restore left %v", entries)
	}
}
