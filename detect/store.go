package detect

import (
	"context"
	"time"
)

// Kinds of ingest records.
const (
	RecordAccess       = "access"       // an access event of another system
	RecordStaff        = "staff"        // a staff member of another system
	RecordPatient      = "patient"      // a patient of another system
	RecordRelationship = "relationship" // a care relationship of another system
	RecordHoneytoken   = "honeytoken"   // a patient made a decoy (phivault honeytoken create)
)

// Record is one item of the ingest stream: an event, or a change to the
// directory, applied in stream order so an event sees every roster sent
// before it. Names, addresses and phones arrive here as tokens only.
type Record struct {
	Seq          int64         `json:"seq"` // assigned by Store.Ingest, from 1
	Kind         string        `json:"kind"`
	Event        *Event        `json:"event,omitempty"`
	User         *User         `json:"user,omitempty"`
	Patient      *Patient      `json:"patient,omitempty"`
	Relationship *Relationship `json:"relationship,omitempty"`
	Honeytoken   string        `json:"honeytoken,omitempty"` // patient id
}

// Cursor is how far the pipeline has processed each stream: the next
// trail index and the last ingest sequence done.
type Cursor struct {
	Trail  int64 `json:"trail"`  // next trail index to process
	Ingest int64 `json:"ingest"` // last ingest sequence processed
}

// Saved is the pipeline's committed state.
type Saved struct {
	Cursor Cursor
	// Snapshot is the engine state (Engine.MarshalState) as of SnapshotAt,
	// or nil.
	Snapshot   []byte
	SnapshotAt Cursor
	// The directory entries that came from the ingest stream, as of
	// Cursor. (phivault's own are read again from the vault.)
	Users         []*User
	Patients      []*Patient
	Relationships []Relationship
	Honeytokens   []string
}

// Commit is what one pipeline step stores, atomically.
type Commit struct {
	Cursor Cursor
	// Alerts replace the stored alerts with the same ids, except for
	// their State: only Triage changes the State of a stored alert, so a
	// decision made while the pipeline was merging new events into the
	// alert is kept.
	Alerts []*Alert
	// Directory changes from ingest records processed in this step.
	Users         []*User
	Patients      []*Patient
	Relationships []Relationship // added (ingested relationships only grow)
	Honeytokens   []string
	// Snapshot, if not nil, replaces the saved snapshot.
	Snapshot   []byte
	SnapshotAt Cursor
}

// AlertFilter selects alerts, newest detection first.
type AlertFilter struct {
	Since    time.Time // detected at or after; zero: any
	Rule     string
	User     string
	Patient  string
	State    string
	MinScore int
	After    string // paging: only alerts after this id in the order
	Limit    int    // 0: no limit
}

// Store keeps the detector's state: cursors, alerts, the ingest stream
// and the directory entries ingested. It holds ids and tokens only.
// Implementations are safe for concurrent use by multiple goroutines.
type Store interface {
	// Load returns the committed state.
	Load(ctx context.Context) (*Saved, error)
	// Commit stores c atomically. It MUST NOT return nil until c is
	// durable: the cursor then says these events are done. A stored
	// alert keeps its State (only Triage changes it), and Commit sets the
	// State of each alert of c to the one stored, so that what follows
	// the commit (paging) sees a triage made meanwhile.
	Commit(ctx context.Context, c *Commit) error
	// Alert returns the alert id, or an error wrapping phivault.ErrNotFound.
	Alert(ctx context.Context, id string) (*Alert, error)
	// Alerts returns the alerts matching f.
	Alerts(ctx context.Context, f AlertFilter) ([]*Alert, error)
	// Ingest appends recs to the ingest stream, numbering them, and
	// returns the last sequence. It MUST NOT return nil until they are
	// durable.
	Ingest(ctx context.Context, recs []Record) (int64, error)
	// ReadIngest returns up to limit records with sequences after after,
	// in order.
	ReadIngest(ctx context.Context, after int64, limit int) ([]Record, error)
	// IngestSize returns the last sequence assigned, or 0.
	IngestSize(ctx context.Context) (int64, error)
	// Triage records t and sets its alert's State to t.Decision. It
	// returns an error wrapping phivault.ErrNotFound if there is no such
	// alert.
	Triage(ctx context.Context, t *Triage) error
	// Triages returns the triage decisions made, oldest first: of one
	// alert, or of every alert if alert is "".
	Triages(ctx context.Context, alert string) ([]*Triage, error)
	Close() error
}

// TriageWatcher is a Store that tells of the triages it records. A
// Pipeline on one keeps the alerts it committed in memory instead of
// reading each back from the store at its next finding, and forgets those
// triaged; on a Store without it, it reads them back.
type TriageWatcher interface {
	// WatchTriage calls fn with the alert's id after each triage Triage
	// records, once it is durable. fn must not block.
	WatchTriage(fn func(alert string))
}

// Triage is a person's decision on an alert. Its note is free text that
// may hold PHI, so it is stored sealed (Note is ciphertext).
type Triage struct {
	Alert    string    `json:"alert"`
	Decision string    `json:"decision"`         // StateTruePositive, StateFalsePositive or StateBenign
	Reason   string    `json:"reason,omitempty"` // for StateBenign: a short reason code, e.g. "covering-shift"
	Note     []byte    `json:"note,omitempty"`   // sealed; nil if none
	By       string    `json:"by"`               // the triaging principal's id
	At       time.Time `json:"at"`
	// Rule and User are the alert's, copied so feedback can tune
	// suppression per user and rule.
	Rule string `json:"rule"`
	User string `json:"user"`
}
