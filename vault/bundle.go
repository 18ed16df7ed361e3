package vault

import (
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

	// A POST prepared before the write transaction: stamped, serialized
	// and tokenized, waiting only to be sealed and stored.
	prepared *phivault.Resource
	tokens   []phivault.Token
	sealed   *phivault.SealedResource // prepared, sealed in the write transaction

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
	return s.bundleResponse(kind+"-response", entries)
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
func (s *Service) transaction(ctx context.Context, entries []*entry) error {
	conditional := false
	for _, e := range entries {
		if e.method == http.MethodPost {
			e.newID = s.NewID()
			conditional = conditional || e.ifNone != ""
		}
		conditional = conditional || (e.resource != nil && hasConditionalRef(e.resource))
	}
	for _, e := range entries {
		e.valid = true // Bundle validates every entry's resource
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
	return s.update(ctx, false, func(tx phivault.StoreTx) error {
		for _, e := range entries {
			e.res, e.err, e.status, e.created = nil, nil, 0, false
			if e.method == http.MethodPost {
				e.id = e.newID
			}
			if e.original != nil {
				e.resource = cloneObject(e.original)
			}
		}
		refs, err := s.assignIDs(ctx, tx, entries)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.resource == nil || e.prepared != nil || (e.method == http.MethodPost && e.res != nil) {
				continue
			}
			if err := s.rewriteRefs(ctx, tx, e, refs); err != nil {
				return err
			}
		}
		if err := s.sealPrepared(ctx, tx, entries); err != nil {
			return err
		}
		for _, method := range transactionOrder {
			for _, e := range entries {
				if e.method != method || e.status != 0 {
					continue
				}
				if err := s.apply(ctx, tx, e); err != nil {
					return entryError(e, err)
				}
			}
		}
		return nil
	})
}

// entryError names the failing entry in err.
func entryError(e *entry, err error) error {
	pe, ok := err.(*phivault.Error)
	if !ok {
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
// The single writer is then left only sealing and storing, which lets
// concurrent imports share the machine's cores.
func (s *Service) prepareAll(ctx context.Context, entries []*entry) error {
	refs := make(map[string]string, len(entries))
	for _, e := range entries {
		id := e.id
		if e.method == http.MethodPost {
			id = e.newID
		} else if e.method != http.MethodPut {
			continue
		}
		if e.fullURL != "" {
			if _, dup := refs[e.fullURL]; dup {
				return invalidAt(fmt.Sprintf("Bundle.entry[%d].fullUrl", e.index), "Two entries have the same fullUrl.")
			}
			refs[e.fullURL] = e.typ + "/" + id
		}
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
			if err := s.rewriteRefs(ctx, tx, e, refs); err != nil {
				return err
			}
			if e.method != http.MethodPost {
				continue
			}
			res, values, err := prepare(e.typ, e.newID, 1, now, e.resource)
			if err != nil {
				return err
			}
			e.prepared = res
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

// sealPrepared seals every prepared entry in one call, so that each
// compartment's key is looked up once per transaction, not per resource.
func (s *Service) sealPrepared(ctx context.Context, tx phivault.StoreTx, entries []*entry) error {
	var prepared []*entry
	var rs []*phivault.Resource
	for _, e := range entries {
		e.sealed = nil
		if e.prepared != nil {
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

// assignIDs gives every POST entry its id (or the existing match of its
// ifNoneExist) and maps full URLs to Type/id for reference rewriting.
func (s *Service) assignIDs(ctx context.Context, tx phivault.StoreTx, entries []*entry) (map[string]string, error) {
	refs := make(map[string]string, len(entries))
	for _, e := range entries {
		switch e.method {
		case http.MethodPost:
			if e.ifNone != "" {
				q, err := conditionalQuery(e.typ, e.ifNone)
				if err != nil {
					return nil, entryError(e, err)
				}
				existing, err := s.matchOne(ctx, tx, q)
				if err != nil {
					return nil, entryError(e, err)
				}
				if existing != nil {
					e.res, e.status = existing, http.StatusOK
					e.id = existing.ID
				}
			}
		case http.MethodPut:
		default:
			continue
		}
		if e.fullURL != "" {
			if _, dup := refs[e.fullURL]; dup {
				return nil, invalidAt(fmt.Sprintf("Bundle.entry[%d].fullUrl", e.index), "Two entries have the same fullUrl.")
			}
			refs[e.fullURL] = e.typ + "/" + e.id
		}
	}
	return refs, nil
}

// rewriteRefs replaces urn:uuid: references by the ids they were assigned
// and resolves conditional references.
func (s *Service) rewriteRefs(ctx context.Context, tx phivault.StoreTx, e *entry, refs map[string]string) error {
	var err error
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
		if match, err = s.matchOne(ctx, tx, q); err == nil && match == nil {
			err = phivault.Errorf(phivault.EPRECONDITION, "Bundle.entry[%d]: a conditional reference matches no resource.", e.index)
		}
		if err != nil {
			return ref
		}
		return match.Ref()
	})
	return err
}

// apply performs one entry inside a transaction or batch.
func (s *Service) apply(ctx context.Context, tx phivault.StoreTx, e *entry) error {
	var err error
	if e.resource != nil && !e.valid {
		if issues := fhir.Validate(e.typ, e.resource); len(issues) > 0 {
			return &phivault.Error{Code: phivault.EUNPROCESSABLE, Message: "The resource is not valid FHIR R4.", Issues: issues}
		}
	}
	switch e.method {
	case http.MethodPost:
		if e.sealed != nil {
			e.res, err = e.prepared, tx.Put(ctx, e.sealed, e.tokens)
		} else {
			e.res, err = s.put(ctx, tx, e.typ, e.id, 0, e.resource)
		}
		e.status, e.created = http.StatusCreated, true
	case http.MethodPut:
		e.res, e.created, err = s.updateTx(ctx, tx, e.typ, e.id, e.resource, e.ifMatch)
		e.status = http.StatusOK
		if e.created {
			e.status = http.StatusCreated
		}
	case http.MethodDelete:
		err = s.deleteTx(ctx, tx, e.typ, e.id)
		if isNotFound(err) {
			err = nil
		}
		e.status = http.StatusNoContent
	case http.MethodGet:
		var sr *phivault.SealedResource
		if sr, err = tx.Current(ctx, e.typ, e.id); err == nil {
			e.res, err = s.open(ctx, tx, sr)
		}
		e.status = http.StatusOK
	}
	return err
}

// batch runs each entry on its own; failures are reported per entry.
func (s *Service) batch(ctx context.Context, entries []*entry) {
	for _, e := range entries {
		if e.err != nil {
			continue
		}
		if e.method == http.MethodGet {
			e.err = s.store.View(ctx, func(tx phivault.StoreTx) error { return s.apply(ctx, tx, e) })
			continue
		}
		e.err = s.update(ctx, e.ifMatch == 0, func(tx phivault.StoreTx) error {
			e.res, e.status, e.created = nil, 0, false
			if e.method == http.MethodPost && e.ifNone != "" {
				q, err := conditionalQuery(e.typ, e.ifNone)
				if err != nil {
					return err
				}
				existing, err := s.matchOne(ctx, tx, q)
				if err != nil {
					return err
				}
				if existing != nil {
					e.res, e.status = existing, http.StatusOK
					return nil
				}
			}
			if e.method == http.MethodPost {
				e.id = s.NewID()
			}
			return s.apply(ctx, tx, e)
		})
	}
}

func (s *Service) bundleResponse(kind string, entries []*entry) (*phivault.BundleResult, error) {
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
			r.FullURL = e.res.Ref()
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
