package phivault

import (
	"context"
	"log/slog"
	"strconv"
	"time"
)

// Resource is one version of a FHIR resource, in plaintext.
//
// Body holds the resource's JSON, including id, meta.versionId and
// meta.lastUpdated; it is nil when Deleted is set. Body is PHI: Resource
// implements slog.LogValuer and logs ids only.
type Resource struct {
	Type        string    // FHIR resource type, e.g. "Observation"
	ID          string    // logical id
	Version     int64     // versionId, starting at 1
	LastUpdated time.Time // UTC, microsecond precision
	Compartment string    // id of the Patient whose compartment holds it, or ""
	Deleted     bool      // this version is a deletion tombstone
	Body        []byte
}

// Ref returns "Type/id".
func (r *Resource) Ref() string { return r.Type + "/" + r.ID }

// ETag returns the weak ETag of the version, W/"n".
func (r *Resource) ETag() string { return `W/"` + strconv.FormatInt(r.Version, 10) + `"` }

// LogValue logs ids only, never the body.
func (r *Resource) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("type", r.Type),
		slog.String("id", r.ID),
		slog.Int64("version", r.Version),
	)
}

// Query is a parsed FHIR search on one resource type (or on a patient
// compartment for $everything). The fhir package builds it from URL
// parameters and has already rejected unknown parameters.
type Query struct {
	Type    string
	Params  []QueryParam
	Count   int       // _count: page size; 0 means the server default
	Offset  int       // position of the first match on this page
	SortAsc bool      // _sort=_lastUpdated (default is newest first)
	Sorted  bool      // an explicit _sort was given
	Include []Include // _include
	Summary string    // "", "count"
	// Ignored lists parameters dropped under Prefer: handling=lenient.
	Ignored []string
	// Compartments, if set, bounds the search to these patient
	// compartments at the store. It is not a FHIR parameter: the access
	// layer sets it for a caller who may see only some compartments (a
	// patient their own, a clinician those of their care teams), so that
	// other patients' records are never read, decrypted or decided on.
	Compartments []string
}

// QueryParam is one search parameter: values within it are ORed, separate
// QueryParams with the same name are ANDed.
type QueryParam struct {
	Name     string   // e.g. "birthdate", "subject", "_lastUpdated"
	Modifier string   // e.g. "exact", "contains", "missing", or a type for references
	Values   []string // raw values, comma-split and unescaped, prefix included
}

// Include is one _include=Source:param[:Target].
type Include struct {
	Source string
	Param  string
	Target string
}

// SearchResult is one page of matches plus the resources _include pulled in.
type SearchResult struct {
	Total    int // matches the caller may see, over all pages
	Matches  []*Resource
	Included []*Resource
}

// HistoryQuery selects versions for _history at instance or type level.
type HistoryQuery struct {
	Type   string // required
	ID     string // "" for type-level history
	Since  time.Time
	Count  int
	Offset int
}

// HistoryResult is one page of versions, newest first.
type HistoryResult struct {
	Total    int
	Versions []*Resource
}

// CreateOptions carries the conditional parts of a create.
type CreateOptions struct {
	IfNoneExist string // query string, e.g. "identifier=http://x|123"
}

// UpdateOptions carries the conditional parts of an update.
type UpdateOptions struct {
	IfMatch int64 // required current version, 0 for none
}

// BundleResult is the outcome of a batch or transaction: the response
// Bundle as JSON, ready to send.
type BundleResult struct {
	Body []byte
}

// RecordService reads and writes FHIR resources with FHIR REST semantics:
// versioning, soft delete, conditional create and update, search, history,
// and batch and transaction bundles.
//
// Methods return *Error values: ENOTFOUND if a resource does not exist or the
// caller may not know that it exists; EGONE for a deleted resource; EINVALID
// or EUNPROCESSABLE for bad input, with issues naming the element path;
// EPRECONDITION when If-Match or If-None-Exist fails. Implementations are safe
// for concurrent use by multiple goroutines. A nil error from a write means
// the write is durable.
type RecordService interface {
	Create(ctx context.Context, typ string, body []byte, opts CreateOptions) (res *Resource, created bool, err error)
	Read(ctx context.Context, typ, id string) (*Resource, error)
	VRead(ctx context.Context, typ, id string, version int64) (*Resource, error)
	Update(ctx context.Context, typ, id string, body []byte, opts UpdateOptions) (res *Resource, created bool, err error)
	Delete(ctx context.Context, typ, id string) error
	History(ctx context.Context, q HistoryQuery) (*HistoryResult, error)
	Search(ctx context.Context, q *Query) (*SearchResult, error)
	// Everything returns the Patient and every resource in its compartment.
	Everything(ctx context.Context, patientID string, count, offset int) (*SearchResult, error)
	// Bundle processes a batch or transaction Bundle. base is the server's
	// FHIR base URL, used for fullUrl and location in the response.
	Bundle(ctx context.Context, body []byte, base string) (*BundleResult, error)
}
