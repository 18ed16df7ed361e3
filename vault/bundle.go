package vault

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// entry is one request of a batch or transaction Bundle.
type entry struct {
	index    int
	fullURL  string
	method   string
	url      string // request.url as sent
	typ, id  string // parsed from url (id empty for POST and searches)
	query    string // the part after '?', for conditional forms
	ifNone   string // request.ifNoneExist
	ifMatch  int64
	resource fhir.Object
	newID    string      // the id a POST gets unless ifNoneExist matches; fixed across retries
	original fhir.Object // resource before references were rewritten, if a retry may need it
	valid    bool        // resource was validated as part of the whole Bundle

	// The version to store, stamped, serialized and tokenized (see
	// stage), and the write the guard decides. A POST of a transaction
	// without conditional parts is prepared before the write transaction
	// (preparedEarly) and sealed in it with the others.
	prepared      *phivault.Resource
	preparedEarly bool
	tokens        []phivault.Token
	sealed        *phivault.SealedResource
	write         *phivault.Write

	// results
	res     *phivault.Resource
	status  int
	created bool
	err     error
}

// bundleEntryResponse is Bundle.entry in a batch-response or
// transaction-response.
type bundleEntryResponse struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Response entryResponse   `json:"response"`
}

type entryResponse struct {
	Status       string          `json:"status"`
	Location     string          `json:"location,omitempty"`
	Etag         string          `json:"etag,omitempty"`
	LastModified string          `json:"lastModified,omitempty"`
	Outcome      json.RawMessage `json:"outcome,omitempty"`
}

// Bundle processes a batch or transaction Bundle.
//
// A transaction is atomic: every entry succeeds or nothing is written. Its
// entries are processed in the FHIR order (DELETE, POST, PUT, GET);
// urn:uuid: full URLs are replaced by the server-assigned ids in every
// reference, and conditional references (Type?query) are resolved to the
// single resource they match. In a batch each entry stands alone.
func (s *Service) Bundle(ctx context.Context, body []byte, base string) (*phivault.BundleResult, error) {
	obj, err := fhir.Decode(body)
	if err != nil {
		return nil, err
	}
	if rt, _ := obj["resourceType"].(string); rt != "Bundle" {
		return nil, phivault.Errorf(phivault.EINVALID, "POST to the base URL takes a batch or transaction Bundle.")
	}
	kind, _ := obj["type"].(string)
	if kind != "batch" && kind != "transaction" {
		return nil, invalidAt("Bundle.type", "Bundle.type must be batch or transaction.")
	}
	if kind == "transaction" {
		if issues := fhir.Validate("Bundle", obj); len(issues) > 0 {
			return nil, &phivault.Error{Code: phivault.EUNPROCESSABLE, Message: "The transaction Bundle is not valid FHIR R4; nothing was written.", Issues: issues}
		}
	}
	entries, err := parseEntries(obj, kind == "batch")
	if err != nil {
		return nil, err
	}
	if kind == "transaction" {
		err = s.transaction(ctx, entries)
	} else {
		s.batch(ctx, entries)
	}
	if err != nil {
		return nil, err
	}
	return s.bundleResponse(kind+"-response", base, entries)
}

func invalidAt(path, msg string) *phivault.Error {
	return &phivault.Error{Code: phivault.EINVALID, Message: msg,
		Issues: []phivault.Issue{{Severity: "error", Code: "invalid", Diagnostics: msg, Expression: []string{path}}}}
}

// parseEntries reads Bundle.entry. In a batch, a malformed entry is recorded
// on the entry; in a transaction it fails the whole Bundle.
func parseEntries(obj fhir.Object, batch bool) ([]*entry, error) {
	raw, _ := obj["entry"].([]any)
	entries := make([]*entry, 0, len(raw))
	for i, r := range raw {
		e := &entry{index: i}
		entries = append(entries, e)
		if err := e.parse(r); err != nil {
			if !batch {
				return nil, err
			}
			e.err = err
		}
	}
	return entries, nil
}

func (e *entry) parse(raw any) error {
	path := fmt.Sprintf("Bundle.entry[%d]", e.index)
	m, _ := raw.(map[string]any)
	req, _ := m["request"].(map[string]any)
	if req == nil {
		return invalidAt(path+".request", "Each entry needs a request with a method and url.")
	}
	e.fullURL, _ = m["fullUrl"].(string)
	if e.fullURL != "" && !validFullURL(e.fullURL) {
		// A relative fullUrl would capture the references of other
		// entries that mean the resource it names (Patient/X).
		return invalidAt(path+".fullUrl", "fullUrl must be an absolute URL or a urn:uuid:/urn:oid: (FHIR R4 forbids relative ones).")
	}
	e.method, _ = req["method"].(string)
	e.url, _ = req["url"].(string)
	e.ifNone, _ = req["ifNoneExist"].(string)
	e.resource, _ = m["resource"].(map[string]any)
	if im, _ := req["ifMatch"].(string); im != "" {
		v, ok := parseETag(im)
		if !ok {
			return invalidAt(path+".request.ifMatch", "ifMatch must be a version ETag such as W/\"3\".")
		}
		e.ifMatch = v
	}
	u := strings.TrimPrefix(e.url, "/")
	u, e.query, _ = strings.Cut(u, "?")
	parts := strings.Split(u, "/")
	e.typ = parts[0]
	if len(parts) > 1 {
		e.id = parts[1]
	}
	if !fhir.IsResourceType(e.typ) || len(parts) > 2 || (len(parts) == 2 && !fhir.IsID(e.id)) {
		return invalidAt(path+".request.url", "request.url must be Type, Type/id or Type?query.")
	}
	switch e.method {
	case http.MethodPost:
		if e.id != "" || e.query != "" {
			return invalidAt(path+".request.url", "POST entries take request.url = Type.")
		}
	case http.MethodPut:
		if e.id == "" {
			return invalidAt(path+".request.url", "PUT entries take request.url = Type/id; conditional update is not supported.")
		}
	case http.MethodDelete:
		if e.id == "" {
			return invalidAt(path+".request.url", "DELETE entries take request.url = Type/id; conditional delete is not supported.")
		}
	case http.MethodGet:
		if e.id == "" {
			return invalidAt(path+".request.url", "GET entries take request.url = Type/id; searches inside a Bundle are not supported.")
		}
	default:
		return invalidAt(path+".request.method", "request.method must be GET, POST, PUT or DELETE.")
	}
	if e.method == http.MethodPost || e.method == http.MethodPut {
		if e.resource == nil {
			return invalidAt(path+".resource", "POST and PUT entries need a resource.")
		}
		if rt, _ := e.resource["resourceType"].(string); rt != e.typ {
			return invalidAt(path+".resource.resourceType", "The resource type does not match request.url.")
		}
		if e.method == http.MethodPut {
			if id, _ := e.resource["id"].(string); id != e.id {
				return invalidAt(path+".resource.id", "The resource id does not match request.url.")
			}
		}
	}
	if e.typ == "AuditEvent" && e.method != http.MethodGet {
		return invalidAt(path+".request.url", "AuditEvent resources are read-only.")
	}
	return nil
}

// validFullURL reports whether s may be a Bundle entry's fullUrl: a
// urn:uuid:, a urn:oid:, or an absolute http(s) URL.
func validFullURL(s string) bool {
	for _, prefix := range []string{"urn:uuid:", "urn:oid:", "https://", "http://"} {
		if strings.HasPrefix(s, prefix) && len(s) > len(prefix) {
			return true
		}
	}
	return false
}

// parseETag parses W/"n" (or "n") into n.
func parseETag(s string) (int64, bool) {
	s = strings.TrimPrefix(s, "W/")
	if len(s) < 3 || s[0] != '"' || s[len(s)-1] != '"' {
		return 0, false
	}
	v, err := strconv.ParseInt(s[1:len(s)-1], 10, 64)
	return v, err == nil && v > 0
}

// transactionOrder is the FHIR processing order of methods in a transaction.
var transactionOrder = [...]string{http.MethodDelete, http.MethodPost, http.MethodPut, http.MethodGet}

// transaction runs the entries atomically. The store may run the function
// more than once, so it starts from the same inputs every time: ids for
// POST entries are drawn once, and resources whose references depend on
// what a conditional matches are rewritten from a pristine copy.
//
// Every write is staged in its final form first, then the request's
// WriteGuard decides all of them together, then they are stored.
func (s *Service) transaction(ctx context.Context, entries []*entry) error {
	g, err := s.guard(ctx)
	if err != nil {
		return err
	}
	if err := checkOverlap(entries); err != nil {
		return err
	}
	conditional := false
	for _, e := range entries {
		if e.method == http.MethodPost {
			e.newID = s.NewID()
		}
		e.valid = true // Bundle validates every entry's resource
		conditional = conditional || e.ifNone != "" || (e.resource != nil && hasConditionalRef(e.resource))
	}
	if conditional {
		for _, e := range entries {
			if e.resource != nil {
				e.original = cloneObject(e.resource)
			}
		}
	} else if err := s.prepareAll(ctx, entries); err != nil {
		return err
	}
	ordered := make([]*entry, 0, len(entries))
	for _, method := range transactionOrder {
		for _, e := range entries {
			if e.method == method {
				ordered = append(ordered, e)
			}
		}
	}
	return s.update(ctx, false, func(tx phivault.StoreTx) error {
		for _, e := range entries {
			e.reset()
			if e.method == http.MethodPost {
				e.id = e.newID
			}
		}
		refs, err := s.assignIDs(ctx, tx, g, entries)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.resource == nil || e.preparedEarly || e.status != 0 {
				continue
			}
			if err := s.rewriteRefs(ctx, tx, g, e, refs); err != nil {
				return err
			}
		}
		for _, e := range ordered {
			if e.method == http.MethodGet {
				continue
			}
			if err := s.stage(ctx, tx, g, e); err != nil {
				return entryError(e, err)
			}
		}
		if err := s.authorize(ctx, g, ordered); err != nil {
			return err
		}
		if err := s.sealPrepared(ctx, tx, entries); err != nil {
			return err
		}
		for _, e := range ordered {
			if e.method == http.MethodGet {
				if err := s.read(ctx, tx, g, e); err != nil {
					return entryError(e, err)
				}
				continue
			}
			if err := s.commit(ctx, tx, e); err != nil {
				return entryError(e, err)
			}
		}
		return nil
	})
}

// checkOverlap refuses a transaction that changes one resource in two
// entries: FHIR says such a transaction fails, and its outcome would
// depend on the processing order.
func checkOverlap(entries []*entry) error {
	seen := make(map[string]int, len(entries))
	for _, e := range entries {
		if e.method != http.MethodPut && e.method != http.MethodDelete {
			continue
		}
		key := e.typ + "/" + e.id
		if i, dup := seen[key]; dup {
			return invalidAt(fmt.Sprintf("Bundle.entry[%d].request.url", e.index),
				fmt.Sprintf("Entries %d and %d change the same resource; a transaction may change each resource once.", i, e.index))
		}
		seen[key] = e.index
	}
	return nil
}

// entryError names the failing entry in err. Errors of single writes
// (index -1) and other than *phivault.Error are returned as they are.
func entryError(e *entry, err error) error {
	pe, ok := err.(*phivault.Error)
	if !ok || e.index < 0 {
		return err
	}
	out := &phivault.Error{Code: pe.Code, Message: fmt.Sprintf("Bundle.entry[%d]: %s Nothing was written.", e.index, pe.Message)}
	for _, is := range pe.Issues {
		for i, x := range is.Expression {
			is.Expression = append([]string(nil), is.Expression...)
			is.Expression[i] = fmt.Sprintf("Bundle.entry[%d].resource.%s", e.index, x)
		}
		out.Issues = append(out.Issues, is)
	}
	return out
}

// prepareAll does, before the write transaction, the work of a transaction
// without conditional parts: it rewrites urn:uuid: references to the ids
// drawn for the entries, then stamps, serializes and tokenizes every POST.
// The single writer is then left only authorizing, sealing and storing,
// which lets concurrent imports share the machine's cores.
func (s *Service) prepareAll(ctx context.Context, entries []*entry) error {
	refs, err := fullURLs(entries)
	if err != nil {
		return err
	}
	now := s.now()
	return s.store.View(ctx, func(tx phivault.StoreTx) error {
		var (
			posts  []*entry
			counts []int
			all    []phivault.IndexValue
		)
		for _, e := range entries {
			if e.resource == nil {
				continue
			}
			if err := s.rewriteRefs(ctx, tx, nil, e, refs); err != nil {
				return err
			}
			if e.method != http.MethodPost {
				continue
			}
			res, values, err := prepare(e.typ, e.newID, 1, now, e.resource)
			if err != nil {
				return entryError(e, err)
			}
			e.prepared, e.preparedEarly = res, true
			posts = append(posts, e)
			counts = append(counts, len(values))
			all = append(all, values...)
		}
		// One Tokens call for the whole Bundle reads the index key once.
		tokens, err := s.sealer.Tokens(ctx, tx, all)
		if err != nil {
			return err
		}
		for i, e := range posts {
			e.tokens, tokens = tokens[:counts[i]:counts[i]], tokens[counts[i]:]
		}
		return nil
	})
}

// fullURLs maps the fullUrl of every POST and PUT entry to the Type/id it
// will have: its own, a POST's drawn id, or the resource its ifNoneExist
// matched.
func fullURLs(entries []*entry) (map[string]string, error) {
	refs := make(map[string]string, len(entries))
	for _, e := range entries {
		id := e.id
		if e.method == http.MethodPost && id == "" {
			id = e.newID // before the transaction: no ifNoneExist to match
		} else if e.method != http.MethodPost && e.method != http.MethodPut {
			continue
		}
		if e.fullURL == "" {
			continue
		}
		if _, dup := refs[e.fullURL]; dup {
			return nil, invalidAt(fmt.Sprintf("Bundle.entry[%d].fullUrl", e.index), "Two entries have the same fullUrl.")
		}
		refs[e.fullURL] = e.typ + "/" + id
	}
	return refs, nil
}

// sealPrepared seals every entry prepared before the transaction in one
// call, so that each compartment's key is looked up once per transaction,
// not per resource.
func (s *Service) sealPrepared(ctx context.Context, tx phivault.StoreTx, entries []*entry) error {
	var prepared []*entry
	var rs []*phivault.Resource
	for _, e := range entries {
		e.sealed = nil
		if e.preparedEarly && e.write != nil {
			prepared = append(prepared, e)
			rs = append(rs, e.prepared)
		}
	}
	if len(rs) == 0 {
		return nil
	}
	sealed, err := s.sealer.SealAll(ctx, tx, rs)
	if err != nil {
		return err
	}
	for i, e := range prepared {
		e.sealed = sealed[i]
	}
	return nil
}

// assignIDs gives every POST entry its id (or the visible existing match
// of its ifNoneExist) and maps full URLs to Type/id for reference
// rewriting.
func (s *Service) assignIDs(ctx context.Context, tx phivault.StoreTx, g phivault.WriteGuard, entries []*entry) (map[string]string, error) {
	for _, e := range entries {
		if e.method == http.MethodPost && e.ifNone != "" {
			if err := s.matchIfNoneExist(ctx, tx, g, e); err != nil {
				return nil, entryError(e, err)
			}
		}
	}
	return fullURLs(entries)
}

// rewriteRefs is the one resolver of references in a body about to be
// stored: fullUrls of the Bundle's entries (refs) become the Type/id they
// were given, a urn:uuid: naming no entry is an error, a conditional
// reference (Type?query) becomes the one resource it matches among those
// the caller may see, and an absolute reference under the server's base
// becomes relative. Anything else stays as it is.
func (s *Service) rewriteRefs(ctx context.Context, tx phivault.StoreTx, g phivault.WriteGuard, e *entry, refs map[string]string) error {
	var err error
	base := strings.TrimSuffix(s.BaseURL, "/")
	fhir.RewriteReferences(e.resource, func(ref string) string {
		if err != nil {
			return ref
		}
		if to, ok := refs[ref]; ok {
			return to
		}
		if strings.HasPrefix(ref, "urn:uuid:") {
			err = invalidAt(fmt.Sprintf("Bundle.entry[%d].resource", e.index), "A urn:uuid: reference names no entry of this Bundle.")
			return ref
		}
		if rest, ok := strings.CutPrefix(ref, base+"/"); ok && base != "" {
			if _, _, local := fhir.LocalRef(rest); local {
				return rest
			}
		}
		typ, query, ok := strings.Cut(ref, "?")
		if !ok || !fhir.IsResourceType(typ) {
			return ref
		}
		q, qerr := conditionalQuery(typ, query)
		if qerr != nil {
			err = qerr
			return ref
		}
		var match *phivault.Resource
		if match, err = s.matchOne(ctx, tx, g, q); err == errManyMatches || (err == nil && match == nil) {
			err = errNoSingleMatch
		}
		if err != nil {
			return ref
		}
		return match.Ref()
	})
	return err
}

// errNoSingleMatch is the one answer for a conditional reference that does
// not match exactly one resource the caller may see: it says nothing of how
// many match, or of what the caller may not see.
var errNoSingleMatch = phivault.Errorf(phivault.EPRECONDITION, "A conditional reference does not match exactly one resource you may see.")

// read answers a GET entry with the current version, if the caller may
// see it; otherwise the entry answers not found.
func (s *Service) read(ctx context.Context, tx phivault.StoreTx, g phivault.WriteGuard, e *entry) error {
	e.status = http.StatusOK
	sr, err := tx.Current(ctx, e.typ, e.id)
	if err != nil {
		return err
	}
	// Whether the caller may know of it at all is decided before it is
	// opened, so that a deletion or a shred is told only to those who may.
	if h, err := hide(ctx, g, stub(sr)); err != nil || h != nil {
		return cmp.Or(err, h)
	}
	res, err := s.open(ctx, tx, sr)
	if err != nil {
		return err
	}
	if h, err := hide(ctx, g, res); err != nil || h != nil {
		return cmp.Or(err, h)
	}
	e.res = res
	return nil
}

// batch runs each entry on its own, through the same path as a single
// interaction; failures are reported per entry.
func (s *Service) batch(ctx context.Context, entries []*entry) {
	g, err := s.guard(ctx)
	for _, e := range entries {
		if e.err != nil {
			continue
		}
		if err != nil {
			e.err = err
			continue
		}
		if e.resource != nil && hasConditionalRef(e.resource) {
			e.original = cloneObject(e.resource)
		}
		if e.method == http.MethodGet {
			e.err = s.store.View(ctx, func(tx phivault.StoreTx) error { return s.read(ctx, tx, g, e) })
			continue
		}
		if e.method == http.MethodPost {
			e.newID = s.NewID()
		}
		e.err = s.update(ctx, e.ifMatch == 0, func(tx phivault.StoreTx) error {
			return s.writeOne(ctx, tx, g, e)
		})
	}
}

// bundleResponse builds the response Bundle; its fullUrls are absolute
// under base, as R4 requires.
func (s *Service) bundleResponse(kind, base string, entries []*entry) (*phivault.BundleResult, error) {
	base = strings.TrimSuffix(base, "/")
	out := struct {
		ResourceType string                `json:"resourceType"`
		ID           string                `json:"id"`
		Type         string                `json:"type"`
		Timestamp    string                `json:"timestamp"`
		Entry        []bundleEntryResponse `json:"entry"`
	}{ResourceType: "Bundle", ID: s.NewID(), Type: kind, Timestamp: s.now().Format(time.RFC3339), Entry: make([]bundleEntryResponse, len(entries))}
	for i, e := range entries {
		r := &out.Entry[i]
		if e.err != nil {
			status, oo := fhir.OutcomeJSON(e.err)
			r.Response.Status = strconv.Itoa(status) + " " + http.StatusText(status)
			r.Response.Outcome = oo
			continue
		}
		r.Response.Status = strconv.Itoa(e.status) + " " + http.StatusText(e.status)
		if e.res != nil {
			r.FullURL = base + "/" + e.res.Ref()
			r.Response.Location = e.res.Ref() + "/_history/" + strconv.FormatInt(e.res.Version, 10)
			r.Response.Etag = e.res.ETag()
			r.Response.LastModified = e.res.LastUpdated.Format(time.RFC3339Nano)
			if e.method == http.MethodGet {
				r.Resource = e.res.Body
			}
		}
	}
	body, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("marshal bundle response: %w", err)
	}
	return &phivault.BundleResult{Body: body}, nil
}

// hasConditionalRef reports whether obj holds a conditional reference
// (Type?query), whose target depends on the store's state.
func hasConditionalRef(obj fhir.Object) bool {
	found := false
	fhir.RewriteReferences(obj, func(ref string) string {
		found = found || strings.Contains(ref, "?")
		return ref
	})
	return found
}

// cloneObject deep-copies a decoded JSON object.
func cloneObject(obj fhir.Object) fhir.Object {
	return cloneValue(obj).(map[string]any)
}

func cloneValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = cloneValue(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = cloneValue(x)
		}
		return out
	}
	return v // strings, json.Number, bools and nil are immutable
}
