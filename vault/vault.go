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
	// Logger receives events such as crypto-shreds. Nil discards them.
	Logger *slog.Logger
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
	var cond *phivault.Query
	if opts.IfNoneExist != "" {
		if cond, err = conditionalQuery(typ, opts.IfNoneExist); err != nil {
			return nil, false, err
		}
	}
	var res *phivault.Resource
	var created bool
	id := s.NewID()
	err = s.update(ctx, true, func(tx phivault.StoreTx) error {
		created = true
		if cond != nil {
			existing, err := s.matchOne(ctx, tx, cond)
			if err != nil {
				return err
			}
			if existing != nil {
				res, created = existing, false
				return nil
			}
		}
		res, err = s.put(ctx, tx, typ, id, 0, obj)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return res, created, nil
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
	var res *phivault.Resource
	var created bool
	err = s.update(ctx, opts.IfMatch == 0, func(tx phivault.StoreTx) (err error) {
		res, created, err = s.updateTx(ctx, tx, typ, id, obj, opts.IfMatch)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return res, created, nil
}

func (s *Service) updateTx(ctx context.Context, tx phivault.StoreTx, typ, id string, obj fhir.Object, ifMatch int64) (*phivault.Resource, bool, error) {
	var prev int64
	created := true
	cur, err := tx.Current(ctx, typ, id)
	switch {
	case isNotFound(err):
	case err != nil:
		return nil, false, err
	default:
		prev, created = cur.Version, cur.Deleted
		// A write into a shredded compartment fails when it seals (the
		// compartment has no key and may get none); one that would move
		// the resource out of it is checked here.
		if cur.Compartment != "" && cur.Compartment != fhir.Compartment(typ, withID(obj, id)) {
			if err := checkShredded(ctx, tx, cur.Compartment); err != nil {
				return nil, false, err
			}
		}
	}
	if ifMatch != 0 && ifMatch != prev {
		return nil, false, phivault.Errorf(phivault.EPRECONDITION, "If-Match names version %d but the current version is %d.", ifMatch, prev)
	}
	res, err := s.put(ctx, tx, typ, id, prev, obj)
	return res, created, err
}

// Delete marks a resource deleted: its history stays, reads answer 410.
func (s *Service) Delete(ctx context.Context, typ, id string) error {
	if err := checkType(typ); err != nil {
		return err
	}
	if !fhir.IsID(id) {
		return phivault.ErrNotFound
	}
	return s.update(ctx, true, func(tx phivault.StoreTx) error {
		return s.deleteTx(ctx, tx, typ, id)
	})
}

func (s *Service) deleteTx(ctx context.Context, tx phivault.StoreTx, typ, id string) error {
	cur, err := tx.Current(ctx, typ, id)
	if err != nil {
		return err
	}
	if err := checkShredded(ctx, tx, cur.Compartment); err != nil {
		return err
	}
	if cur.Deleted {
		return nil // deleting twice is a no-op
	}
	tomb := &phivault.Resource{Type: typ, ID: id, Version: cur.Version + 1, LastUpdated: s.now(), Compartment: cur.Compartment, Deleted: true}
	sealed, err := s.sealer.Seal(ctx, tx, tomb)
	if err != nil {
		return err
	}
	return tx.Put(ctx, sealed, nil)
}

// put writes obj as version prev+1 of typ/id: it stamps id and meta, finds
// the compartment, seals, and stores the version with its tokens.
func (s *Service) put(ctx context.Context, tx phivault.StoreTx, typ, id string, prev int64, obj fhir.Object) (*phivault.Resource, error) {
	res, values, err := prepare(typ, id, prev+1, s.now(), obj)
	if err != nil {
		return nil, err
	}
	tokens, err := s.sealer.Tokens(ctx, tx, values)
	if err != nil {
		return nil, err
	}
	if err := s.sealAndPut(ctx, tx, res, tokens); err != nil {
		return nil, err
	}
	return res, nil
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
	body, err := fhir.Marshal(obj)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal %s: %w", typ, err)
	}
	res := &phivault.Resource{
		Type:        typ,
		ID:          id,
		Version:     version,
		LastUpdated: now,
		Compartment: fhir.Compartment(typ, obj),
		Body:        body,
	}
	return res, fhir.IndexValues(typ, obj), nil
}

// sealAndPut seals res and stores it with its tokens.
func (s *Service) sealAndPut(ctx context.Context, tx phivault.StoreTx, res *phivault.Resource, tokens []phivault.Token) error {
	sealed, err := s.sealer.Seal(ctx, tx, res)
	if err != nil {
		return err
	}
	return tx.Put(ctx, sealed, tokens)
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

// withID returns obj with its id set, for computing the compartment of a
// Patient before put stamps the id.
func withID(obj fhir.Object, id string) fhir.Object {
	if obj["id"] != id {
		obj["id"] = id
	}
	return obj
}
