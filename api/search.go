package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// bundle is a searchset or history Bundle. Resource bodies are
// json.RawMessage: they are copied as they are, never decoded.
type bundle struct {
	ResourceType string  `json:"resourceType"`
	Type         string  `json:"type"`
	Total        int     `json:"total"`
	Link         []link  `json:"link,omitempty"`
	Entry        []entry `json:"entry,omitempty"`
}

type link struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type entry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Search   *entrySearch    `json:"search,omitempty"`
	Request  *entryRequest   `json:"request,omitempty"`
	Response *entryResponse  `json:"response,omitempty"`
}

type entrySearch struct {
	Mode string `json:"mode"`
}

type entryRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

type entryResponse struct {
	Status       string `json:"status"`
	Etag         string `json:"etag,omitempty"`
	LastModified string `json:"lastModified,omitempty"`
}

var (
	searchMatch   = &entrySearch{Mode: "match"}
	searchInclude = &entrySearch{Mode: "include"}
	searchOutcome = &entrySearch{Mode: "outcome"}
)

func (h *Handler) serveSearch(w http.ResponseWriter, r *http.Request) error {
	typ, err := resourceType(r)
	if err != nil {
		return err
	}
	values, err := h.searchValues(w, r)
	if err != nil {
		return err
	}
	params := values
	if _, ok := values["_pretty"]; ok {
		params = cloneWithout(values, "_pretty")
	}
	lenient := preference(r, "handling") == "lenient"
	q, err := fhir.ParseQuery(typ, params, lenient)
	if err != nil {
		return err
	}
	res, err := h.records.Search(r.Context(), q)
	if err != nil {
		return err
	}

	base := h.base(r)
	b := bundle{ResourceType: "Bundle", Type: "searchset", Total: res.Total}
	b.Link = pageLinks(base+"/"+typ, values, q.Offset, q.Count, len(res.Matches), res.Total)
	if q.Summary != "count" {
		b.Entry = make([]entry, 0, len(res.Matches)+len(res.Included)+1)
		for _, m := range res.Matches {
			b.Entry = append(b.Entry, entry{FullURL: base + "/" + m.Type + "/" + m.ID, Resource: m.Body, Search: searchMatch})
		}
		for _, m := range res.Included {
			b.Entry = append(b.Entry, entry{FullURL: base + "/" + m.Type + "/" + m.ID, Resource: m.Body, Search: searchInclude})
		}
	}
	if len(q.Ignored) > 0 {
		oo := &outcome{ResourceType: "OperationOutcome"}
		for _, name := range q.Ignored {
			oo.Issue = append(oo.Issue, fhir.OutcomeIssue{Severity: "warning", Code: "not-supported",
				Diagnostics: "Parameter ignored (Prefer: handling=lenient).", Expression: []string{name}})
		}
		b.Entry = append(b.Entry, entry{Resource: mustEncode(oo), Search: searchOutcome})
	}
	return writeBundle(w, &b, res.Matches, res.Included)
}

// searchValues returns the search parameters: the URL query, merged for
// POST _search with the form-encoded body.
func (h *Handler) searchValues(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	if r.Method != http.MethodPost {
		v, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return nil, errBadQuery
		}
		return v, nil
	}
	if err := checkContentType(r, "application/x-www-form-urlencoded"); err != nil {
		return nil, err
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.maxBody)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, h.errTooLarge()
		}
		return nil, errBadQuery
	}
	return r.Form, nil
}

var (
	errBadQuery   = &phivault.Error{Code: phivault.EINVALID, Message: "Malformed query string or form body."}
	errBadHistory = &phivault.Error{Code: phivault.EINVALID, Message: "Unsupported parameter: history supports _since, _count and _offset."}
	errBadEvery   = &phivault.Error{Code: phivault.EINVALID, Message: "Unsupported parameter: $everything supports _count and _offset."}
	errBadSince   = &phivault.Error{Code: phivault.EINVALID, Message: "Invalid _since: use an instant with a time zone, e.g. 2024-01-02T03:04:05Z.",
		Issues: []phivault.Issue{{Severity: "error", Code: "value", Diagnostics: "Invalid instant.", Expression: []string{"_since"}}}}
	errBadPaging = &phivault.Error{Code: phivault.EINVALID, Message: "Invalid _count or _offset: use a non-negative integer; _count at most " + strconv.Itoa(fhir.MaxCount) + "."}
)

// paging holds the result parameters of history and $everything.
type paging struct {
	count, offset int
	since         time.Time
}

// parsePaging reads _count, _offset and (if allowSince) _since. Other
// parameters are errors, or ignored under Prefer: handling=lenient.
func parsePaging(r *http.Request, allowSince bool, unsupported error) (url.Values, paging, error) {
	var p paging
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, p, errBadQuery
	}
	lenient := preference(r, "handling") == "lenient"
	for key, vals := range v {
		if len(vals) != 1 && key != "_format" && key != "_pretty" {
			return nil, p, unsupported
		}
		switch key {
		case "_count", "_offset":
			n, err := strconv.Atoi(vals[0])
			if err != nil || n < 0 || (key == "_count" && n > fhir.MaxCount) {
				return nil, p, errBadPaging
			}
			if key == "_count" {
				p.count = n
			} else {
				p.offset = n
			}
		case "_since":
			if !allowSince {
				return nil, p, unsupported
			}
			t, err := time.Parse(time.RFC3339Nano, vals[0])
			if err != nil {
				return nil, p, errBadSince
			}
			p.since = t
		case "_format", "_pretty":
		default:
			if !lenient {
				return nil, p, unsupported
			}
		}
	}
	return v, p, nil
}

func (h *Handler) serveHistory(w http.ResponseWriter, r *http.Request) error {
	typ, err := resourceType(r)
	if err != nil {
		return err
	}
	hq := phivault.HistoryQuery{Type: typ}
	self := h.base(r) + "/" + typ
	if id := r.PathValue("id"); id != "" {
		if !fhir.IsID(id) {
			return errBadID
		}
		hq.ID = id
		self += "/" + id
	}
	self += "/_history"
	values, p, err := parsePaging(r, true, errBadHistory)
	if err != nil {
		return err
	}
	hq.Count, hq.Offset, hq.Since = p.count, p.offset, p.since
	res, err := h.records.History(r.Context(), hq)
	if err != nil {
		return err
	}

	base := h.base(r)
	b := bundle{ResourceType: "Bundle", Type: "history", Total: res.Total}
	b.Link = pageLinks(self, values, p.offset, p.count, len(res.Versions), res.Total)
	b.Entry = make([]entry, 0, len(res.Versions))
	for _, v := range res.Versions {
		e := entry{FullURL: base + "/" + v.Type + "/" + v.ID}
		e.Response = &entryResponse{Etag: v.ETag(), LastModified: v.LastUpdated.UTC().Format(time.RFC3339Nano)}
		switch {
		case v.Deleted:
			e.Request = &entryRequest{Method: http.MethodDelete, URL: v.Type + "/" + v.ID}
			e.Response.Status = "204 No Content"
		case v.Version == 1:
			e.Resource = v.Body
			e.Request = &entryRequest{Method: http.MethodPost, URL: v.Type}
			e.Response.Status = "201 Created"
		default:
			e.Resource = v.Body
			e.Request = &entryRequest{Method: http.MethodPut, URL: v.Type + "/" + v.ID}
			e.Response.Status = "200 OK"
		}
		b.Entry = append(b.Entry, e)
	}
	return writeBundle(w, &b, res.Versions, nil)
}

func (h *Handler) serveEverything(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if !fhir.IsID(id) {
		return errBadID
	}
	values, p, err := parsePaging(r, false, errBadEvery)
	if err != nil {
		return err
	}
	res, err := h.records.Everything(r.Context(), id, p.count, p.offset)
	if err != nil {
		return err
	}
	base := h.base(r)
	b := bundle{ResourceType: "Bundle", Type: "searchset", Total: res.Total}
	b.Link = pageLinks(base+"/Patient/"+id+"/$everything", values, p.offset, p.count, len(res.Matches), res.Total)
	b.Entry = make([]entry, 0, len(res.Matches)+len(res.Included))
	for _, m := range res.Matches {
		b.Entry = append(b.Entry, entry{FullURL: base + "/" + m.Type + "/" + m.ID, Resource: m.Body, Search: searchMatch})
	}
	for _, m := range res.Included {
		b.Entry = append(b.Entry, entry{FullURL: base + "/" + m.Type + "/" + m.ID, Resource: m.Body, Search: searchInclude})
	}
	return writeBundle(w, &b, res.Matches, res.Included)
}

// pageLinks returns the self, next and previous links of a page: the
// request's parameters with _offset and _count set.
func pageLinks(path string, values url.Values, offset, count, n, total int) []link {
	links := []link{{Relation: "self", URL: withQuery(path, values)}}
	size := count
	if size == 0 {
		size = n // the server default, as far as this page shows
	}
	if offset+n < total && n > 0 {
		links = append(links, link{Relation: "next", URL: withQuery(path, withPage(values, offset+n, size))})
	}
	if offset > 0 {
		prev := max(offset-max(size, 1), 0)
		links = append(links, link{Relation: "previous", URL: withQuery(path, withPage(values, prev, size))})
	}
	return links
}

func withQuery(path string, v url.Values) string {
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

func withPage(v url.Values, offset, count int) url.Values {
	c := cloneWithout(v, "_offset", "_count")
	c.Set("_offset", strconv.Itoa(offset))
	if count > 0 {
		c.Set("_count", strconv.Itoa(count))
	}
	return c
}

func cloneWithout(v url.Values, drop ...string) url.Values {
	c := make(url.Values, len(v)+2)
	for k, vals := range v {
		c[k] = vals
	}
	for _, k := range drop {
		delete(c, k)
	}
	return c
}

// writeBundle encodes b. The resources' bodies go in as they are; an
// unreadable body (which the service should never return) fails the
// request rather than corrupting the Bundle.
func writeBundle(w http.ResponseWriter, b *bundle, lists ...[]*phivault.Resource) error {
	size := 256 + 200*len(b.Entry)
	for _, l := range lists {
		for _, res := range l {
			size += len(res.Body)
		}
	}
	var buf bytes.Buffer
	buf.Grow(size)
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(b); err != nil {
		return errors.New("api: encode bundle")
	}
	writeBody(w, http.StatusOK, bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	return nil
}
