package auditlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/phivault/phivault"

	"golang.org/x/mod/sumdb/tlog"
	"pgregory.net/rapid"
)

// TestAppendHashes checks the stack-based hashing of batches against
// tlog.StoredHashes record by record, for random batch sizes.
func TestAppendHashes(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		batches := rapid.SliceOfN(rapid.IntRange(1, 70), 1, 12).Draw(t, "batches")
		want := hashMap{}     // every stored hash, from tlog
		var stack []tlog.Hash // the subtrees, from appendHashes
		var n int64
		for _, size := range batches {
			leaves := make([]tlog.Hash, size)
			var expect []tlog.Hash
			for i := range leaves {
				rec := []byte(fmt.Sprintf("entry %d", n+int64(i)))
				leaves[i] = tlog.RecordHash(rec)
				hs, err := tlog.StoredHashes(n+int64(i), rec, want)
				if err != nil {
					t.Fatal(err)
				}
				first := tlog.StoredHashIndex(0, n+int64(i))
				for j, h := range hs {
					want[first+int64(j)] = h
				}
				expect = append(expect, hs...)
			}
			got, grown := appendHashes(stack, n, leaves)
			stack = grown
			if len(got) != len(expect) {
				t.Fatalf("appendHashes(%d, %d leaves) = %d hashes, want %d", n, size, len(got), len(expect))
			}
			for i := range got {
				if got[i] != expect[i] {
					t.Fatalf("appendHashes(%d, %d leaves) hash %d differs from tlog", n, size, i)
				}
			}
			n += int64(size)
			root := rootHash(stack)
			wantRoot, _ := tlog.TreeHash(n, want)
			if root != wantRoot {
				t.Fatalf("root of %d records differs from tlog", n)
			}
			idx := frontier(n)
			if len(stack) != len(idx) {
				t.Fatalf("kept %d hashes, want the %d of the frontier", len(stack), len(idx))
			}
			for i, x := range idx {
				if stack[i] != want[x] {
					t.Fatalf("subtree %d of %d records differs from tlog's stored hash %d", i, n, x)
				}
			}
		}
	})
}

// TestEncode_fastPath checks that Encode's fast path writes exactly the
// bytes json.Marshal writes, for strings with and without characters that
// json.Marshal escapes, so that entries keep one canonical encoding.
func TestEncode_fastPath(t *testing.T) {
	strs := rapid.OneOf(
		rapid.StringMatching(`[A-Za-z0-9/_.:|-]{0,12}`),
		rapid.String(),
		rapid.SampledFrom([]string{"", "a<b", "x&y", `q"`, `b\s`, "\u2028", "\xff", "tab\t", "é", "~", " "}),
	)
	rapid.Check(t, func(t *rapid.T) {
		e := &phivault.AuditEntry{
			Time:          time.Unix(rapid.Int64Range(0, 1<<34).Draw(t, "sec"), rapid.Int64Range(0, 999999999).Draw(t, "nsec")),
			RequestID:     strs.Draw(t, "request_id"),
			Actor:         strs.Draw(t, "actor"),
			Roles:         rapid.SliceOfN(strs, 0, 3).Draw(t, "roles"),
			Client:        strs.Draw(t, "client"),
			Source:        strs.Draw(t, "source"),
			Action:        "read" + strs.Draw(t, "action"),
			TargetType:    strs.Draw(t, "target_type"),
			TargetID:      strs.Draw(t, "target_id"),
			TargetVersion: rapid.Int64Range(-3, 1<<40).Draw(t, "version"),
			Compartments:  rapid.SliceOfN(strs, 0, 3).Draw(t, "compartments"),
			SearchParams:  rapid.SliceOfN(strs, 0, 3).Draw(t, "search_params"),
			SearchValues:  rapid.SliceOfN(strs, 0, 3).Draw(t, "search_values"),
			Returned:      rapid.SliceOfN(strs, 0, 3).Draw(t, "returned"),
			Outcome:       "ok" + strs.Draw(t, "outcome"),
			Decision:      strs.Draw(t, "decision"),
			Purpose:       strs.Draw(t, "purpose"),
		}
		want, err := json.Marshal(toJSON(e))
		if err != nil {
			t.Fatal(err)
		}
		if fast, ok := appendEntry(nil, e); ok && !bytes.Equal(fast, want) {
			t.Fatalf("fast path wrote\n%s\nwant\n%s", fast, want)
		}
		got, err := Encode(e)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Encode() = %s, %v\nwant %s", got, err, want)
		}
	})
	// The fast path must be the one taken for ordinary entries.
	e := &phivault.AuditEntry{Time: time.Now(), Actor: "admin", Action: "read", TargetType: "Patient",
		TargetID: "0a1b", Returned: []string{"Patient/0a1b/_history/1"}, Outcome: "ok"}
	if _, ok := appendEntry(nil, e); !ok {
		t.Error("appendEntry refused an ordinary entry")
	}
}
