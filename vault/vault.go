// Package vault implements phivault.RecordService: FHIR REST semantics
// (versioning, soft delete, conditional create, If-Match, search with paging,
// history, $everything, batch and atomic transaction Bundles) over a
// phivault.Sealer, which encrypts, and a phivault.Store, which keeps only
// ciphertext and blind-index tokens.
//
// # Search over encrypted records
//
// Parameters that compare by equality become blind-index tokens and are
// answered by the store. Everything else (date ranges, :contains, prefixes)
// is evaluated after decryption on a candidate set that tokens, _id or a
// patient compartment have already bounded. A search that could only be
// answered by decrypting every record of a type is refused with an
// OperationOutcome naming a parameter to add.
package vault

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// Defaults for Service fields.
const (
	DefaultCount         = 50     // page size when _count is absent
	MaxCount             = 1000   // largest page
	DefaultMaxCandidates = 20_000 // largest candidate set decrypted for one search
	DefaultReindexPage   = 500    // resources retokened per transaction by Reindex
	maxWriteRetries      = 5
)

// Service implements phivault.RecordService. Create it with New, set fields,
// then use it; it is safe for concurrent use by multiple goroutines.
type Service struct {
	store  phivault.Store
	sealer phivault.Sealer

	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// NewID returns a fresh random resource id. Default: a random UUIDv4.
	NewID func() string
	// MaxCandidates caps how many records one search may decrypt to
	// evaluate non-equality parameters. Default DefaultMaxCandidates.
	MaxCandidates int
	// ReindexPage is how many resources Reindex retokens in one
	// transaction, besides any written at the same instant as the
	// page's oldest. Default (and if not positive) DefaultReindexPage.
	ReindexPage int
	// Logger receives events such as crypto-shreds. Nil discards them.
	Logger *slog.Logger
	// BaseURL is the server's public FHIR base URL, such as
	// "https://vault.example.org/fhir". Absolute references under it are
	// stored relative; every other absolute reference names another
	// server. Empty: only relative references are this server's.
	BaseURL string
	// RequireGuard refuses every write whose context carries no
	// phivault.WriteGuard, so that a wiring mistake fails closed. Default
	// false, for tools and tests that run the vault alone.
	RequireGuard bool
}

var _ phivault.RecordService = (*Service)(nil)

// New returns a Service over store, sealing with sealer.
func New(store phivault.Store, sealer phivault.Sealer) *Service {
	return &Service{
		store:         store,
		sealer:        sealer,
		Now:           time.Now,
		NewID:         newUUID,
		MaxCandidates: DefaultMaxCandidates,
		ReindexPage:   DefaultReindexPage,
	}
}

// newUUID returns a random (version 4) UUID; ids never derive from PHI.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("vault: crypto/rand failed: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (s *Service) now() time.Time { return s.Now().UTC().Truncate(time.Microsecond) }

// checkType returns an error unless typ is a FHIR R4 resource type.
func checkType(typ string) error {
	if !fhir.IsResourceType(typ) {
		return phivault.Errorf(phivault.ENOTFOUND, "Resource type %q is not supported.", safeName(typ))
	}
	if typ == "AuditEvent" {
		// Reserved for the audit trail's read-only view.
		return phivault.Errorf(phivault.EFORBIDDEN, "AuditEvent resources are read-only.")
	}
	return nil
}

// safeName returns s if it looks like an identifier (safe to echo), else "?".
func safeName(s string) string {
	if len(s) > 64 {
		return "?"
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':') {
			return "?"
		}
	}
	return s
}

// Read returns the current version of a resource.
func (s *Service) Read(ctx context.Context, typ, id string) (*phivault.Resource, error) {
	if err := checkReadable(typ, id); err != nil {
		return nil, err
	}
	var res *phivault.Resource
	err := s.store.View(ctx, func(tx phivault.StoreTx) error {
		sr, err := tx.Current(ctx, typ, id)
		if err != nil {
			return err
		}
		res, err = s.open(ctx, tx, sr)
		return err
	})
	return res, err
}

// VRead returns one version of a resource.
func (s *Service) VRead(ctx context.Context, typ, id string, version int64) (*phivault.Resource, error) {
	if err := checkReadable(typ, id); err != nil {
		return nil, err
	}
	var res *phivault.Resource
	err := s.store.View(ctx, func(tx phivault.StoreTx) error {
		sr, err := tx.Version(ctx, typ, id, version)
		if err != nil {
			return err
		}
		res, err = s.open(ctx, tx, sr)
		return err
	})
	return res, err
}

func checkReadable(typ, id string) error {
	if !fhir.IsResourceType(typ) {
		return phivault.Errorf(phivault.ENOTFOUND, "Resource type %q is not supported.", safeName(typ))
	}
	if !fhir.IsID(id) {
		return phivault.ErrNotFound
	}
	return nil
}

// open decrypts sr; a tombstone is reported as EGONE, and so is anything
// of a shredded compartment (phivault.ErrShredded).
func (s *Service) open(ctx context.Context, tx phivault.StoreTx, sr *phivault.SealedResource) (*phivault.Resource, error) {
	if sr.Deleted {
		if err := checkShredded(ctx, tx, sr.Compartment); err != nil {
			return nil, err
		}
		return nil, errGone
	}
	return s.openSealed(ctx, tx, sr)
}

// openSealed decrypts sr. A version whose key is gone because its
// compartment was shredded is phivault.ErrShredded, never an integrity
// failure: the Sealer reports it so, and this checks again for Sealers
// that do not.
func (s *Service) openSealed(ctx context.Context, tx phivault.StoreTx, sr *phivault.SealedResource) (*phivault.Resource, error) {
	res, err := s.sealer.Open(ctx, tx, sr)
	if err != nil && phivault.ErrorCode(err) == phivault.EINTEGRITY && sr.Compartment != "" {
		if serr := checkShredded(ctx, tx, sr.Compartment); serr != nil {
			return nil, serr
		}
	}
	return res, err
}

var errGone = &phivault.Error{Code: phivault.EGONE, Message: "The resource was deleted."}

// update runs fn in a store transaction, retrying when a concurrent writer
// won the race and retry is allowed (writes without If-Match).
func (s *Service) update(ctx context.Context, retry bool, fn func(tx phivault.StoreTx) error) error {
	for attempt := 0; ; attempt++ {
		err := s.store.Update(ctx, fn)
		if err == nil || !retry || attempt == maxWriteRetries || phivault.ErrorCode(err) != phivault.ECONFLICT {
			return err
		}
	}
}

// isNotFound reports whether err is the store's not-found error.
func isNotFound(err error) bool {
	return err != nil && phivault.ErrorCode(err) == phivault.ENOTFOUND
}

// parseBody parses and validates a resource body and checks it against typ.
func parseBody(typ string, body []byte) (fhir.Object, error) {
	got, obj, err := fhir.Parse(body)
	if err != nil {
		return nil, err
	}
	if got != typ {
		return nil, &phivault.Error{Code: phivault.EINVALID, Message: "The resourceType in the body does not match the URL.",
			Issues: []phivault.Issue{{Severity: "error", Code: "invalid", Diagnostics: "resourceType does not match the URL", Expression: []string{"resourceType"}}}}
	}
	return obj, nil
}

// Create stores a new resource under a fresh random id.
func (s *Service) Create(ctx context.Context, typ string, body []byte, opts phivault.CreateOptions) (*phivault.Resource, bool, error) {
	if err := checkType(typ); err != nil {
		return nil, false, err
	}
	obj, err := parseBody(typ, body)
	if err != nil {
		return nil, false, err
	}
	if opts.IfNoneExist != "" {
		if _, err := conditionalQuery(typ, opts.IfNoneExist); err != nil {
			return nil, false, err
		}
	}
	e := &entry{index: -1, method: http.MethodPost, typ: typ, resource: obj, ifNone: opts.IfNoneExist, newID: s.NewID(), valid: true}
	if err := s.writeSingle(ctx, true, e); err != nil {
		return nil, false, err
	}
	return e.res, e.created, nil
}

// writeSingle runs the single interaction e in its own transaction.
func (s *Service) writeSingle(ctx context.Context, retry bool, e *entry) error {
	g, err := s.guard(ctx)
	if err != nil {
		return err
	}
	if e.resource != nil && hasConditionalRef(e.resource) {
		e.original = cloneObject(e.resource)
	}
	return s.update(ctx, retry, func(tx phivault.StoreTx) error {
		return s.writeOne(ctx, tx, g, e)
	})
}

// Update replaces a resource, or creates it under the given id.
func (s *Service) Update(ctx context.Context, typ, id string, body []byte, opts phivault.UpdateOptions) (*phivault.Resource, bool, error) {
	if err := checkType(typ); err != nil {
		return nil, false, err
	}
	if !fhir.IsID(id) {
		return nil, false, phivault.Errorf(phivault.EINVALID, "The id in the URL is not a valid FHIR id.")
	}
	obj, err := parseBody(typ, body)
	if err != nil {
		return nil, false, err
	}
	if bodyID, _ := obj["id"].(string); bodyID != id {
		return nil, false, &phivault.Error{Code: phivault.EINVALID, Message: "The id in the body must match the id in the URL.",
			Issues: []phivault.Issue{{Severity: "error", Code: "invalid", Diagnostics: "id does not match the URL", Expression: []string{typ + ".id"}}}}
	}
	e := &entry{index: -1, method: http.MethodPut, typ: typ, id: id, resource: obj, ifMatch: opts.IfMatch, valid: true}
	if err := s.writeSingle(ctx, opts.IfMatch == 0, e); err != nil {
		return nil, false, err
	}
	return e.res, e.created, nil
}

// Delete marks a resource deleted: its history stays, reads answer 410.
func (s *Service) Delete(ctx context.Context, typ, id string) error {
	if err := checkType(typ); err != nil {
		return err
	}
	if !fhir.IsID(id) {
		return phivault.ErrNotFound
	}
	return s.writeSingle(ctx, true, &entry{index: -1, method: http.MethodDelete, typ: typ, id: id})
}

// prepare stamps obj with id, version and time, finds its compartment, and
// serializes it. It returns the resource and its index values. It needs no
// transaction, so bulk writes can do it before taking the writer.
func prepare(typ, id string, version int64, now time.Time, obj fhir.Object) (*phivault.Resource, []phivault.IndexValue, error) {
	obj["id"] = id
	meta, _ := obj["meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		obj["meta"] = meta
	}
	meta["versionId"] = strconv.FormatInt(version, 10)
	meta["lastUpdated"] = now.Format(instantLayout)
	compartment, err := fhir.Compartment(typ, obj)
	if err != nil {
		return nil, nil, err
	}
	body, err := fhir.Marshal(obj)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal %s: %w", typ, err)
	}
	res := &phivault.Resource{
		Type:        typ,
		ID:          id,
		Version:     version,
		LastUpdated: now,
		Compartment: compartment,
		Body:        body,
	}
	return res, fhir.IndexValues(typ, obj), nil
}

// instantLayout formats meta.lastUpdated as a FHIR instant with microseconds.
const instantLayout = "2006-01-02T15:04:05.000000Z07:00"

// History returns versions of one resource or of a whole type, newest first.
func (s *Service) History(ctx context.Context, q phivault.HistoryQuery) (*phivault.HistoryResult, error) {
	if err := checkReadable(q.Type, orDefault(q.ID, "x")); err != nil {
		return nil, err
	}
	f := phivault.HistoryFilter{Type: q.Type, ID: q.ID, Since: q.Since, Offset: q.Offset, Limit: pageSize(q.Count)}
	out := &phivault.HistoryResult{}
	err := s.store.View(ctx, func(tx phivault.StoreTx) error {
		versions, total, err := tx.History(ctx, f)
		if err != nil {
			return err
		}
		if q.ID != "" && total == 0 {
			return phivault.ErrNotFound
		}
		out.Total = total
		for _, sr := range versions {
			if sr.Deleted && sr.Compartment != "" {
				if err := checkShredded(ctx, tx, sr.Compartment); isShredded(err) && q.ID == "" {
					out.Total--
					continue
				} else if err != nil {
					return err
				}
			}
			if sr.Deleted {
				out.Versions = append(out.Versions, &phivault.Resource{Type: sr.Type, ID: sr.ID, Version: sr.Version, LastUpdated: sr.LastUpdated, Compartment: sr.Compartment, Deleted: true})
				continue
			}
			res, err := s.openSealed(ctx, tx, sr)
			if isShredded(err) && q.ID == "" {
				// Type-level history leaves out erased versions.
				out.Total--
				continue
			} else if err != nil {
				return err
			}
			out.Versions = append(out.Versions, res)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func pageSize(count int) int {
	switch {
	case count <= 0:
		return DefaultCount
	case count > MaxCount:
		return MaxCount
	}
	return count
}
