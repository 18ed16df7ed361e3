package restoredrill

import (
	"fmt"
	"io"
	"time"
)

// Steps of a drill, in the order they run.
const (
	StepRestore    = "restore"           // backup.Restore into the scratch folder
	StepFiles      = "verify-files"      // every file's SHA-256 against the manifest
	StepCount      = "count-records"     // quick_check and row counts of every database
	StepSource     = "source-checkpoint" // the manifest's checkpoint is one the live vault published
	StepStart      = "start-server"      // a phivault server process on the scratch folder
	StepRead       = "read-sample"       // patients read through the FHIR API
	StepStop       = "stop-server"       // the server stopped cleanly
	StepAudit      = "verify-audit"      // phivault audit verify on the scratch folder
	StepCleanup    = "cleanup"           // the scratch folder deleted
	OutcomeDone    = "done"
	OutcomeFailed  = "failed"
	OutcomeSkipped = "skipped" // not run: an earlier step failed, or nothing to check against
)

// Step is one step of a drill and how it went.
type Step struct {
	Name    string `json:"name"`
	Outcome string `json:"outcome"` // OutcomeDone, OutcomeFailed, OutcomeSkipped
	Reason  string `json:"reason,omitempty"`
	// MS is how long the step took, in milliseconds.
	MS int64 `json:"ms"`
}

// Database is what the drill found in one restored SQLite database.
type Database struct {
	Name   string           `json:"name"`   // file name in the data folder
	SHA256 string           `json:"sha256"` // of the restored file, hex; equal to the manifest's
	Size   int64            `json:"size"`
	Tables map[string]int64 `json:"tables"` // rows per table
	Rows   int64            `json:"rows"`   // rows in all tables
}

// Report is what one restore drill found. It holds ids, names, counts,
// hashes and times only.
type Report struct {
	Started      time.Time `json:"started"`
	Snapshot     string    `json:"snapshot,omitempty"`
	SnapshotTime time.Time `json:"snapshot_time,omitzero"`
	Files        int       `json:"files"` // files restored and verified
	Bytes        int64     `json:"bytes"`
	// Shreds is how many shred tombstones newer than the snapshot the
	// restore applied again (their patients are shredded in the scratch
	// copy, as in a real restore).
	Shreds int `json:"shreds,omitempty"`
	// AuditCheckpoint is the tree size of the manifest's audit checkpoint;
	// AuditEntries the entries "audit verify" found after the drill's
	// reads (more, by the drill's own reads).
	AuditCheckpoint int64      `json:"audit_checkpoint"`
	AuditEntries    int64      `json:"audit_entries"`
	Databases       []Database `json:"databases,omitempty"`
	// Patients is how many patients the API read gave back and read one
	// by one.
	Patients int `json:"patients"`
	// RTOMS is from the start of the restore to the first successful API
	// read, in milliseconds; -1 if there was none.
	RTOMS int64 `json:"rto_ms"`
	// RPOMS is from the snapshot's time to the start of the drill, in
	// milliseconds; -1 if the snapshot was not read.
	RPOMS    int64     `json:"rpo_ms"`
	Steps    []Step    `json:"steps"`
	Pass     bool      `json:"pass"`
	Failures []string  `json:"failures,omitempty"`
	Finished time.Time `json:"finished"`
}

// step records a step that took from start to now.
func (r *Report) step(name, outcome, reason string, took time.Duration) {
	r.Steps = append(r.Steps, Step{Name: name, Outcome: outcome, Reason: reason, MS: took.Milliseconds()})
	if outcome == OutcomeFailed {
		r.Failures = append(r.Failures, name+": "+reason)
	}
}

// Step returns the step called name, and whether it ran.
func (r *Report) Step(name string) (Step, bool) {
	for _, s := range r.Steps {
		if s.Name == name {
			return s, true
		}
	}
	return Step{}, false
}

// Text writes the report for a person to read.
func (r *Report) Text(w io.Writer) {
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	ms := func(n int64) string {
		if n < 0 {
			return "unknown"
		}
		return (time.Duration(n) * time.Millisecond).Round(time.Millisecond).String()
	}
	fmt.Fprintf(w, "restore drill: %s\n", verdict)
	if r.Snapshot != "" {
		fmt.Fprintf(w, "  snapshot:  %s of %s (%d files, %d bytes)\n", r.Snapshot, r.SnapshotTime.Format(time.RFC3339), r.Files, r.Bytes)
	}
	fmt.Fprintf(w, "  RTO:       %s (restore start to first API read)\n", ms(r.RTOMS))
	fmt.Fprintf(w, "  RPO:       %s (snapshot time to drill start)\n", ms(r.RPOMS))
	for _, d := range r.Databases {
		fmt.Fprintf(w, "  database   %-22s %8d rows in %d tables, sha256 %.16s…\n", d.Name, d.Rows, len(d.Tables), d.SHA256)
	}
	if r.AuditEntries > 0 {
		fmt.Fprintf(w, "  audit:     %d entries, checkpoint in the snapshot at %d\n", r.AuditEntries, r.AuditCheckpoint)
	}
	if r.Shreds > 0 {
		fmt.Fprintf(w, "  shreds:    %d patients shredded after the snapshot shredded again\n", r.Shreds)
	}
	fmt.Fprintf(w, "  patients:  %d read through the API\n", r.Patients)
	for _, s := range r.Steps {
		line := fmt.Sprintf("  step %-18s %-8s %6s", s.Name, s.Outcome, ms(s.MS))
		if s.Reason != "" {
			line += "  " + s.Reason
		}
		fmt.Fprintln(w, line)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "  FAILED: %s\n", f)
	}
}
