package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/mock"
	"github.com/prometheus/client_golang/prometheus"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

const testToken = "test-token-0123456789"

var testNow = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// testHandler is a Handler on a mock service with a bearer token, a log
// buffer and a metrics registry.
type testHandler struct {
	*api.Handler
	svc *mock.RecordService
	log *bytes.Buffer
	reg *prometheus.Registry
}

func newTestHandler(tb testing.TB, configure ...func(*api.Options)) *testHandler {
	tb.Helper()
	th := &testHandler{svc: &mock.RecordService{}, log: &bytes.Buffer{}, reg: prometheus.NewRegistry()}
	opts := api.Options{
		BaseURL:       "https://vault.test/fhir",
		Authenticator: &api.TokenAuthenticator{Hash: api.HashToken(testToken), Actor: "admin"},
		Registerer:    th.reg,
		Logger:        slog.New(slog.NewJSONHandler(th.log, nil)),
		Now:           func() time.Time { return testNow },
		Version:       "test",
	}
	for _, c := range configure {
		c(&opts)
	}
	th.Handler = api.NewHandler(th.svc, opts)
	return th
}

// do serves one request; hdr holds header name/value pairs.
func (th *testHandler) do(method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	r.Header.Set("Authorization", "Bearer "+testToken)
	if body != "" {
		r.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			r.Header.Del(hdr[i])
		} else {
			r.Header.Set(hdr[i], hdr[i+1])
		}
	}
	w := httptest.NewRecorder()
	th.ServeHTTP(w, r)
	return w
}

func patient(id string, version int64) *phivault.Resource {
	return &phivault.Resource{
		Type: "Patient", ID: id, Version: version,
		LastUpdated: time.Date(2024, 1, 2, 3, 4, 5, 600000, time.UTC),
		Compartment: id,
		Body:        []byte(fmt.Sprintf(`{"resourceType":"Patient","id":%q,"meta":{"versionId":"%d"},"name":[{"family":"Smith"}]}`, id, version)),
	}
}

func wantStatus(tb testing.TB, w *httptest.ResponseRecorder, want int) {
	tb.Helper()
	if w.Code != want {
		tb.Fatalf("status = %d, want %d; body %s", w.Code, want, w.Body)
	}
}

func wantHeader(tb testing.TB, w *httptest.ResponseRecorder, name, want string) {
	tb.Helper()
	if got := w.Header().Get(name); got != want {
		tb.Errorf("%s = %q, want %q", name, got, want)
	}
}

// outcome decodes an OperationOutcome response.
type outcome struct {
	ResourceType string
	Issue        []struct {
		Severity, Code, Diagnostics string
		Expression                  []string
	}
}

func decodeOutcome(tb testing.TB, w *httptest.ResponseRecorder, wantCode string) outcome {
	tb.Helper()
	wantHeader(tb, w, "Content-Type", "application/fhir+json; charset=utf-8")
	var oo outcome
	if err := json.Unmarshal(w.Body.Bytes(), &oo); err != nil {
		tb.Fatalf("decode OperationOutcome: %v; body %s", err, w.Body)
	}
	if oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		tb.Fatalf("body is not an OperationOutcome with issues: %s", w.Body)
	}
	if oo.Issue[0].Code != wantCode {
		tb.Errorf("issue code = %q, want %q", oo.Issue[0].Code, wantCode)
	}
	return oo
}

// golden compares got (JSON) with testdata/name, indented; -update rewrites it.
func golden(tb testing.TB, name string, got []byte) {
	tb.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, got, "", "  "); err != nil {
		tb.Fatalf("indent %s: %v", name, err)
	}
	buf.WriteByte('\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		tb.Errorf("%s differs from golden file (run go test -update to accept):\n%s", name, buf.Bytes())
	}
}

func TestHandler_Metadata(t *testing.T) {
	th := newTestHandler(t)
	w := th.do("GET", "/fhir/metadata", "", "Authorization", "")
	wantStatus(t, w, http.StatusOK)
	wantHeader(t, w, "Content-Type", "application/fhir+json; charset=utf-8")
	golden(t, "capability.json", w.Body.Bytes())
	if typ, obj, err := fhir.Parse(w.Body.Bytes()); err != nil || typ != "CapabilityStatement" {
		t.Fatalf("metadata parses as %q, %v", typ, err)
	} else if issues := fhir.Validate(typ, obj); len(issues) > 0 {
		t.Errorf("the CapabilityStatement is not valid R4: %+v", issues)
	}

	var cs struct {
		FHIRVersion string
		Rest        []struct {
			Interaction []struct{ Code string }
			Resource    []struct {
				Type        string
				Interaction []struct{ Code string }
				SearchParam []struct{ Name string }
				Operation   []struct{ Name string }
			}
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &cs); err != nil {
		t.Fatal(err)
	}
	if cs.FHIRVersion != "4.0.1" || len(cs.Rest) != 1 || len(cs.Rest[0].Interaction) != 2 {
		t.Fatalf("unexpected CapabilityStatement header: %+v", cs)
	}
	var found bool
	for _, r := range cs.Rest[0].Resource {
		if r.Type == "Patient" {
			found = true
			if len(r.Operation) != 1 || r.Operation[0].Name != "everything" {
				t.Errorf("Patient operations = %+v, want everything", r.Operation)
			}
			if len(r.SearchParam) == 0 {
				t.Error("Patient has no searchParam")
			}
		}
	}
	if !found {
		t.Error("CapabilityStatement lists no Patient")
	}
}

func TestHandler_Read(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		th := newTestHandler(t)
		res := patient("p1", 3)
		th.svc.ReadFn = func(ctx context.Context, typ, id string) (*phivault.Resource, error) {
			if typ != "Patient" || id != "p1" {
				t.Errorf("Read(%q, %q), want Patient p1", typ, id)
			}
			if got := api.ActorFromContext(ctx); got != "admin" {
				t.Errorf("actor = %q, want admin", got)
			}
			return res, nil
		}
		w := th.do("GET", "/fhir/Patient/p1", "")
		wantStatus(t, w, http.StatusOK)
		wantHeader(t, w, "ETag", `W/"3"`)
		wantHeader(t, w, "Last-Modified", "Tue, 02 Jan 2024 03:04:05 GMT")
		wantHeader(t, w, "Content-Type", "application/fhir+json; charset=utf-8")
		if w.Header().Get("X-Request-Id") == "" {
			t.Error("no X-Request-Id")
		}
		if !bytes.Equal(w.Body.Bytes(), res.Body) {
			t.Errorf("body = %s, want %s", w.Body, res.Body)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		th := newTestHandler(t)
		th.svc.ReadFn = func(ctx context.Context, typ, id string) (*phivault.Resource, error) {
			return nil, phivault.ErrNotFound
		}
		w := th.do("GET", "/fhir/Patient/p1", "")
		wantStatus(t, w, http.StatusNotFound)
		oo := decodeOutcome(t, w, "not-found")
		if oo.Issue[0].Diagnostics != "Resource not found." {
			t.Errorf("diagnostics = %q", oo.Issue[0].Diagnostics)
		}
	})
	t.Run("ErrGone", func(t *testing.T) {
		th := newTestHandler(t)
		th.svc.ReadFn = func(ctx context.Context, typ, id string) (*phivault.Resource, error) {
			return nil, phivault.Errorf(phivault.EGONE, "Resource deleted.")
		}
		w := th.do("GET", "/fhir/Patient/p1", "")
		wantStatus(t, w, http.StatusGone)
		decodeOutcome(t, w, "deleted")
	})
	t.Run("ErrUnknownType", func(t *testing.T) {
		th := newTestHandler(t)
		w := th.do("GET", "/fhir/Patent/p1", "")
		wantStatus(t, w, http.StatusNotFound)
		decodeOutcome(t, w, "not-supported")
		if th.svc.ReadInvoked {
			t.Error("service called for an unknown type")
		}
	})
	t.Run("ErrBadID", func(t *testing.T) {
		th := newTestHandler(t)
		w := th.do("GET", "/fhir/Patient/"+strings.Repeat("x", 65), "")
		wantStatus(t, w, http.StatusBadRequest)
		decodeOutcome(t, w, "invalid")
	})
}

func TestHandler_VRead(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		th := newTestHandler(t)
		th.svc.VReadFn = func(ctx context.Context, typ, id string, v int64) (*phivault.Resource, error) {
			if v != 2 {
				t.Errorf("version = %d, want 2", v)
			}
			return patient(id, v), nil
		}
		w := th.do("GET", "/fhir/Patient/p1/_history/2", "")
		wantStatus(t, w, http.StatusOK)
		wantHeader(t, w, "ETag", `W/"2"`)
	})
	t.Run("ErrBadVersion", func(t *testing.T) {
		th := newTestHandler(t)
		for _, vid := range []string{"0", "-1", "01", "x", "99999999999999999999"} {
			w := th.do("GET", "/fhir/Patient/p1/_history/"+vid, "")
			wantStatus(t, w, http.StatusNotFound)
		}
	})
	t.Run("Deleted", func(t *testing.T) {
		th := newTestHandler(t)
		th.svc.VReadFn = func(ctx context.Context, typ, id string, v int64) (*phivault.Resource, error) {
			return &phivault.Resource{Type: typ, ID: id, Version: v, Deleted: true}, nil
		}
		w := th.do("GET", "/fhir/Patient/p1/_history/2", "")
		wantStatus(t, w, http.StatusGone)
		decodeOutcome(t, w, "deleted")
	})
}

func TestHandler_Create(t *testing.T) {
	body := `{"resourceType":"Patient"}`
	t.Run("OK", func(t *testing.T) {
		th := newTestHandler(t)
		th.svc.CreateFn = func(ctx context.Context, typ string, b []byte, opts phivault.CreateOptions) (*phivault.Resource, bool, error) {
			if typ != "Patient" || string(b) != body {
				t.Errorf("Create(%q, %s)", typ, b)
			}
			if opts.IfNoneExist != "identifier=x|1" {
				t.Errorf("IfNoneExist = %q", opts.IfNoneExist)
			}
			return patient("new", 1), true, nil
		}
		w := th.do("POST", "/fhir/Patient", body, "If-None-Exist", "identifier=x|1", "Content-Type", "application/json; charset=UTF-8")
		wantStatus(t, w, http.StatusCreated)
		wantHeader(t, w, "Location", "https://vault.test/fhir/Patient/new/_history/1")
		wantHeader(t, w, "ETag", `W/"1"`)
		wantHeader(t, w, "Last-Modified", "Tue, 02 Jan 2024 03:04:05 GMT")
		if !strings.Contains(w.Body.String(), `"id":"new"`) {
			t.Errorf("body = %s", w.Body)
		}
	})
	t.Run("ConditionalExists", func(t *testing.T) {
		th := newTestHandler(t)
		th.svc.CreateFn = func(ctx context.Context, typ string, b []byte, opts phivault.CreateOptions) (*phivault.Resource, bool, error) {
			return patient("old", 4), false, nil
		}
		w := th.do("POST", "/fhir/Patient", body, "If-None-Exist", "identifier=x|1")
		wantStatus(t, w, http.StatusOK)
		wantHeader(t, w, "ETag", `W/"4"`)
	})
	t.Run("PreferMinimal", func(t *testing.T) {
		th := newTestHandler(t)
		th.svc.CreateFn = func(ctx context.Context, typ string, b []byte, opts phivault.CreateOptions) (*phivault.Resource, bool, error) {
			return patient("new", 1), true, nil
		}
		w := th.do("POST", "/fhir/Patient", body, "Prefer", "return=minimal")
		wantStatus(t, w, http.StatusCreated)
		if w.Body.Len() != 0 {
			t.Errorf("body = %s, want none", w.Body)
		}
		w = th.do("POST", "/fhir/Patient", body, "Prefer", "return=OperationOutcome")
		wantStatus(t, w, http.StatusCreated)
		decodeOutcome(t, w, "informational")
	})
	t.Run("ErrUnprocessable", func(t *testing.T) {
		th := newTestHandler(t)
		th.svc.CreateFn = func(ctx context.Context, typ string, b []byte, opts phivault.CreateOptions) (*phivault.Resource, bool, error) {
			return nil, false, &phivault.Error{Code: phivault.EUNPROCESSABLE, Message: "The resource is not valid.",
				Issues: []phivault.Issue{{Code: "value", Diagnostics: "Invalid date.", Expression: []string{"Patient.birthDate"}}}}
		}
		w := th.do("POST", "/fhir/Patient", body)
		wantStatus(t, w, http.StatusUnprocessableEntity)
		oo := decodeOutcome(t, w, "processing")
		if len(oo.Issue) != 2 || oo.Issue[1].Severity != "error" || oo.Issue[1].Expression[0] != "Patient.birthDate" {
			t.Errorf("issues = %+v", oo.Issue)
		}
		golden(t, "outcome-unprocessable.json", w.Body.Bytes())
	})
	t.Run("ErrUnsupportedMediaType", func(t *testing.T) {
		th := newTestHandler(t)
		for _, ct := range []string{"text/plain", "application/fhir+xml", "application/json; charset=latin1", ""} {
			w := th.do("POST", "/fhir/Patient", body, "Content-Type", ct)
			wantStatus(t, w, http.StatusUnsupportedMediaType)
			decodeOutcome(t, w, "not-supported")
		}
	})
	t.Run("ErrTooLarge", func(t *testing.T) {
		th := newTestHandler(t, func(o *api.Options) { o.MaxBodyBytes = 10 })
		w := th.do("POST", "/fhir/Patient", body)
		wantStatus(t, w, http.StatusRequestEntityTooLarge)
		decodeOutcome(t, w, "too-long")

		// Without a Content-Length, the limit still holds while reading.
		r := httptest.NewRequest("POST", "/fhir/Patient", io.MultiReader(strings.NewReader(body)))
		r.ContentLength = -1
		r.Header.Set("Authorization", "Bearer "+testToken)
		r.Header.Set("Content-Type", "application/fhir+json")
		w = httptest.NewRecorder()
		th.ServeHTTP(w, r)
		wantStatus(t, w, http.StatusRequestEntityTooLarge)
		if th.svc.CreateInvoked {
			t.Error("service called with an oversized body")
		}
	})
}

func TestHandler_Update(t *testing.T) {
	body := `{"resourceType":"Patient","id":"p1"}`
	t.Run("OK", func(t *testing.T) {
		th := newTestHandler(t)
		th.svc.UpdateFn = func(ctx context.Context, typ, id string, b []byte, opts phivault.UpdateOptions) (*phivault.Resource, bool, error) {
			if opts.IfMatch != 3 {
				t.Errorf("IfMatch = %d, want 3", opts.IfMatch)
			}
			return patient(id, 4), false, nil
		}
		w := th.do("PUT", "/fhir/Patient/p1", body, "If-Match", `W/"3"`)
		wantStatus(t, w, http.StatusOK)
		wantHeader(t, w, "ETag", `W/"4"`)
		wantHeader(t, w, "Location", "")
	})
	t.Run("Created", func(t *testing.T) {
		th := newTestHandler(t)
		th.svc.UpdateFn = func(ctx context.Context, typ, id string, b []byte, opts phivault.UpdateOptions) (*phivault.Resource, bool, error) {
			return patient(id, 1), true, nil
		}
		w := th.do("PUT", "/fhir/Patient/p1", body)
		wantStatus(t, w, http.StatusCreated)
		wantHeader(t, w, "Location", "https://vault.test/fhir/Patient/p1/_history/1")
	})
	t.Run("ErrMalformedIfMatch", func(t *testing.T) {
		th := newTestHandler(t)
		for _, im := range []string{`"3"`, `W/3`, `W/"3`, `W/"-3"`, `W/"03"`, `W/"0"`, `W/"x"`, `*`} {
			w := th.do("PUT", "/fhir/Patient/p1", body, "If-Match", im)
			wantStatus(t, w, http.StatusBadRequest)
		}
		if th.svc.UpdateInvoked {
			t.Error("service called with a malformed If-Match")
		}
	})
	t.Run("ErrPrecondition", func(t *testing.T) {
		th := newTestHandler(t)
		th.svc.UpdateFn = func(ctx context.Context, typ, id string, b []byte, opts phivault.UpdateOptions) (*phivault.Resource, bool, error) {
			return nil, false, phivault.Errorf(phivault.EPRECONDITION, "Version mismatch.")
		}
		w := th.do("PUT", "/fhir/Patient/p1", body, "If-Match", `W/"3"`)
		wantStatus(t, w, http.StatusPreconditionFailed)
		decodeOutcome(t, w, "conflict")
	})
}

func TestHandler_Delete(t *testing.T) {
	th := newTestHandler(t)
	th.svc.DeleteFn = func(ctx context.Context, typ, id string) error { return nil }
	w := th.do("DELETE", "/fhir/Observation/o1", "")
	wantStatus(t, w, http.StatusNoContent)
	if w.Body.Len() != 0 {
		t.Errorf("body = %s, want none", w.Body)
	}
	w = th.do("DELETE", "/fhir/Observation/o1", "", "Prefer", "return=OperationOutcome")
	wantStatus(t, w, http.StatusOK)
	decodeOutcome(t, w, "informational")
}

// searchBundle decodes a Bundle response.
type searchBundle struct {
	ResourceType, Type string
	Total              *int
	Link               []struct{ Relation, URL string }
	Entry              []struct {
		FullURL  string
		Resource json.RawMessage
		Search   struct{ Mode string }
		Request  struct{ Method, URL string }
		Response struct{ Status, Etag, LastModified string }
	}
}

func decodeBundle(tb testing.TB, w *httptest.ResponseRecorder, typ string) searchBundle {
	tb.Helper()
	wantStatus(tb, w, http.StatusOK)
	var b searchBundle
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
		tb.Fatalf("decode Bundle: %v; body %s", err, w.Body)
	}
	if b.ResourceType != "Bundle" || b.Type != typ || b.Total == nil {
		tb.Fatalf("not a %s Bundle with total: %s", typ, w.Body)
	}
	return b
}

func (b searchBundle) link(rel string) string {
	for _, l := range b.Link {
		if l.Relation == rel {
			return l.URL
		}
	}
	return ""
}

func wantQuery(tb testing.TB, link string, want url.Values) {
	tb.Helper()
	u, err := url.Parse(link)
	if err != nil {
		tb.Fatal(err)
	}
	if got := u.Query().Encode(); got != want.Encode() {
		tb.Errorf("link %s has query %s, want %s", link, got, want.Encode())
	}
}

func TestHandler_Search(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		th := newTestHandler(t)
		th.svc.SearchFn = func(ctx context.Context, q *phivault.Query) (*phivault.SearchResult, error) {
			if q.Type != "Patient" || q.Count != 2 || q.Offset != 2 || len(q.Params) != 1 || q.Params[0].Name != "family" {
				t.Errorf("query = %+v", q)
			}
			return &phivault.SearchResult{Total: 7,
				Matches:  []*phivault.Resource{patient("a", 1), patient("b", 2)},
				Included: []*phivault.Resource{{Type: "Organization", ID: "o", Version: 1, Body: []byte(`{"resourceType":"Organization","id":"o"}`)}},
			}, nil
		}
		w := th.do("GET", "/fhir/Patient?family=smith&_count=2&_offset=2", "")
		b := decodeBundle(t, w, "searchset")
		if *b.Total != 7 || len(b.Entry) != 3 {
			t.Fatalf("total %d, %d entries; want 7, 3", *b.Total, len(b.Entry))
		}
		if b.Entry[0].FullURL != "https://vault.test/fhir/Patient/a" || b.Entry[0].Search.Mode != "match" ||
			b.Entry[2].Search.Mode != "include" || b.Entry[2].FullURL != "https://vault.test/fhir/Organization/o" {
			t.Errorf("entries = %+v", b.Entry)
		}
		if !bytes.Equal(b.Entry[1].Resource, patient("b", 2).Body) {
			t.Errorf("resource = %s, want the body as stored", b.Entry[1].Resource)
		}
		wantQuery(t, b.link("self"), url.Values{"family": {"smith"}, "_count": {"2"}, "_offset": {"2"}})
		wantQuery(t, b.link("next"), url.Values{"family": {"smith"}, "_count": {"2"}, "_offset": {"4"}})
		wantQuery(t, b.link("previous"), url.Values{"family": {"smith"}, "_count": {"2"}, "_offset": {"0"}})
		if !strings.HasPrefix(b.link("next"), "https://vault.test/fhir/Patient?") {
			t.Errorf("next = %s", b.link("next"))
		}
	})
	t.Run("LastPage", func(t *testing.T) {
		th := newTestHandler(t)
		th.svc.SearchFn = func(ctx context.Context, q *phivault.Query) (*phivault.SearchResult, error) {
			return &phivault.SearchResult{Total: 1, Matches: []*phivault.Resource{patient("a", 1)}}, nil
		}
		b := decodeBundle(t, th.do("GET", "/fhir/Patient", ""), "searchset")
		if b.link("next") != "" || b.link("previous") != "" || b.link("self") != "https://vault.test/fhir/Patient" {
			t.Errorf("links = %+v", b.Link)
		}
	})
	t.Run("SummaryCount", func(t *testing.T) {
		th := newTestHandler(t)
		th.svc.SearchFn = func(ctx context.Context, q *phivault.Query) (*phivault.SearchResult, error) {
			return &phivault.SearchResult{Total: 42}, nil
		}
		w := th.do("GET", "/fhir/Patient?_summary=count", "")
		b := decodeBundle(t, w, "searchset")
		if *b.Total != 42 || len(b.Entry) != 0 || strings.Contains(w.Body.String(), `"entry"`) {
			t.Errorf("body = %s", w.Body)
		}
	})
	t.Run("PostSearch", func(t *testing.T) {
		th := newTestHandler(t)
		th.svc.SearchFn = func(ctx context.Context, q *phivault.Query) (*phivault.SearchResult, error) {
			if len(q.Params) != 2 || q.Count != 5 {
				t.Errorf("query = %+v, want family and gender with _count 5", q)
			}
			return &phivault.SearchResult{}, nil
		}
		w := th.do("POST", "/fhir/Patient/_search?_count=5", "family=smith&gender=female",
			"Content-Type", "application/x-www-form-urlencoded")
		decodeBundle(t, w, "searchset")
		if !th.svc.SearchInvoked {
			t.Fatal("Search not called")
		}
		w = th.do("POST", "/fhir/Patient/_search", `{"family":"smith"}`)
		wantStatus(t, w, http.StatusUnsupportedMediaType)
	})
	t.Run("Lenient", func(t *testing.T) {
		th := newTestHandler(t)
		th.svc.SearchFn = func(ctx context.Context, q *phivault.Query) (*phivault.SearchResult, error) {
			return &phivault.SearchResult{}, nil
		}
		w := th.do("GET", "/fhir/Patient?nosuchparam=1", "")
		wantStatus(t, w, http.StatusBadRequest)
		decodeOutcome(t, w, "invalid")
		if th.svc.SearchInvoked {
			t.Error("service called for an invalid search")
		}
		w = th.do("GET", "/fhir/Patient?nosuchparam=1", "", "Prefer", "handling=lenient")
		b := decodeBundle(t, w, "searchset")
		if len(b.Entry) != 1 || b.Entry[0].Search.Mode != "outcome" || !strings.Contains(string(b.Entry[0].Resource), `"expression":["nosuchparam"]`) {
			t.Errorf("entries = %s", w.Body)
		}
	})
}

func TestHandler_History(t *testing.T) {
	t.Run("Instance", func(t *testing.T) {
		th := newTestHandler(t)
		th.svc.HistoryFn = func(ctx context.Context, q phivault.HistoryQuery) (*phivault.HistoryResult, error) {
			want := phivault.HistoryQuery{Type: "Patient", ID: "p1", Count: 3, Since: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
			if !q.Since.Equal(want.Since) || q.Type != want.Type || q.ID != want.ID || q.Count != want.Count {
				t.Errorf("History(%+v), want %+v", q, want)
			}
			del := &phivault.Resource{Type: "Patient", ID: "p1", Version: 3, Deleted: true, LastUpdated: testNow}
			return &phivault.HistoryResult{Total: 5, Versions: []*phivault.Resource{del, patient("p1", 2), patient("p1", 1)}}, nil
		}
		b := decodeBundle(t, th.do("GET", "/fhir/Patient/p1/_history?_since=2024-01-01T00:00:00Z&_count=3", ""), "history")
		if len(b.Entry) != 3 {
			t.Fatalf("%d entries, want 3", len(b.Entry))
		}
		type rr struct{ method, url, status, etag string }
		want := []rr{
			{"DELETE", "Patient/p1", "204 No Content", `W/"3"`},
			{"PUT", "Patient/p1", "200 OK", `W/"2"`},
			{"POST", "Patient", "201 Created", `W/"1"`},
		}
		for i, e := range b.Entry {
			got := rr{e.Request.Method, e.Request.URL, e.Response.Status, e.Response.Etag}
			if got != want[i] {
				t.Errorf("entry %d = %+v, want %+v", i, got, want[i])
			}
		}
		if b.Entry[0].Resource != nil || b.Entry[1].Response.LastModified != "2024-01-02T03:04:05.0006Z" {
			t.Errorf("entries = %+v", b.Entry)
		}
		wantQuery(t, b.link("next"), url.Values{"_since": {"2024-01-01T00:00:00Z"}, "_count": {"3"}, "_offset": {"3"}})
	})
	t.Run("Type", func(t *testing.T) {
		th := newTestHandler(t)
		th.svc.HistoryFn = func(ctx context.Context, q phivault.HistoryQuery) (*phivault.HistoryResult, error) {
			if q.Type != "Observation" || q.ID != "" {
				t.Errorf("History(%+v)", q)
			}
			return &phivault.HistoryResult{}, nil
		}
		b := decodeBundle(t, th.do("GET", "/fhir/Observation/_history", ""), "history")
		if b.link("self") != "https://vault.test/fhir/Observation/_history" {
			t.Errorf("self = %s", b.link("self"))
		}
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		th := newTestHandler(t)
		for _, q := range []string{"_since=yesterday", "_count=-1", "_offset=x", "name=smith"} {
			w := th.do("GET", "/fhir/Patient/p1/_history?"+q, "")
			wantStatus(t, w, http.StatusBadRequest)
			if strings.Contains(w.Body.String(), "smith") || strings.Contains(w.Body.String(), "yesterday") {
				t.Errorf("error echoes the value: %s", w.Body)
			}
		}
	})
}

func TestHandler_Everything(t *testing.T) {
	th := newTestHandler(t)
	th.svc.EverythingFn = func(ctx context.Context, id string, count, offset int) (*phivault.SearchResult, error) {
		if id != "p1" || count != 1 || offset != 0 {
			t.Errorf("Everything(%q, %d, %d)", id, count, offset)
		}
		return &phivault.SearchResult{Total: 2, Matches: []*phivault.Resource{patient("p1", 1)}}, nil
	}
	b := decodeBundle(t, th.do("GET", "/fhir/Patient/p1/$everything?_count=1", ""), "searchset")
	if len(b.Entry) != 1 || b.Entry[0].FullURL != "https://vault.test/fhir/Patient/p1" {
		t.Errorf("entries = %+v", b.Entry)
	}
	if !strings.HasPrefix(b.link("next"), "https://vault.test/fhir/Patient/p1/$everything?") {
		t.Errorf("next = %q", b.link("next"))
	}
	w := th.do("GET", "/fhir/Observation/o1/$everything", "")
	wantStatus(t, w, http.StatusNotFound) // only Patient has $everything
}

func TestHandler_Bundle(t *testing.T) {
	th := newTestHandler(t, func(o *api.Options) { o.BaseURL = "" })
	th.svc.BundleFn = func(ctx context.Context, body []byte, base string) (*phivault.BundleResult, error) {
		if base != "http://example.com/fhir" {
			t.Errorf("base = %q", base)
		}
		return &phivault.BundleResult{Body: []byte(`{"resourceType":"Bundle","type":"transaction-response"}`)}, nil
	}
	for _, path := range []string{"/fhir", "/fhir/"} {
		w := th.do("POST", path, `{"resourceType":"Bundle","type":"transaction"}`)
		wantStatus(t, w, http.StatusOK)
		if w.Body.String() != `{"resourceType":"Bundle","type":"transaction-response"}` {
			t.Errorf("POST %s: body = %s", path, w.Body)
		}
	}
}

func TestHandler_Authenticate(t *testing.T) {
	th := newTestHandler(t)
	for _, auth := range []string{"", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer wrong-token", "Bearer " + testToken + " x"} {
		w := th.do("GET", "/fhir/Patient/p1", "", "Authorization", auth)
		wantStatus(t, w, http.StatusUnauthorized)
		if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("Authorization %q: WWW-Authenticate = %q", auth, w.Header().Get("WWW-Authenticate"))
		}
		decodeOutcome(t, w, "login")
	}
	if th.svc.ReadInvoked {
		t.Error("service called without authentication")
	}

	t.Run("NilAuthenticator", func(t *testing.T) {
		th := newTestHandler(t, func(o *api.Options) { o.Authenticator = nil })
		w := th.do("GET", "/fhir/Patient/p1", "")
		wantStatus(t, w, http.StatusUnauthorized)
		w = th.do("GET", "/fhir/metadata", "")
		wantStatus(t, w, http.StatusOK)
	})
	t.Run("Forbidden", func(t *testing.T) {
		th := newTestHandler(t, func(o *api.Options) { o.Authenticator = denyAll{} })
		w := th.do("GET", "/fhir/Patient/p1", "")
		wantStatus(t, w, http.StatusForbidden)
		decodeOutcome(t, w, "forbidden")
	})
}

type denyAll struct{}

func (denyAll) Authenticate(ctx context.Context, token string) (context.Context, error) {
	return nil, phivault.Errorf(phivault.EFORBIDDEN, "Account suspended.")
}

func TestTokenAuthenticator(t *testing.T) {
	token, hash, err := api.NewToken(bytes.NewReader(bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	if len(token) != 43 || strings.ContainsAny(token, "+/=") {
		t.Errorf("token %q is not 32 bytes of base64url", token)
	}
	a := &api.TokenAuthenticator{Hash: hash, Actor: "admin"}
	ctx, err := a.Authenticate(context.Background(), token)
	if err != nil || api.ActorFromContext(ctx) != "admin" {
		t.Fatalf("Authenticate(token) = %v, actor %q", err, api.ActorFromContext(ctx))
	}
	if _, err := a.Authenticate(context.Background(), token+"x"); phivault.ErrorCode(err) != phivault.EUNAUTHORIZED {
		t.Errorf("Authenticate(wrong) = %v, want unauthorized", err)
	}
	empty := &api.TokenAuthenticator{Actor: "admin"}
	if _, err := empty.Authenticate(context.Background(), ""); err == nil {
		t.Error("an authenticator without a hash accepted a token")
	}
}

func TestHandler_MethodNotAllowed(t *testing.T) {
	th := newTestHandler(t)
	tests := []struct{ method, path, allow string }{
		{"PATCH", "/fhir/Patient/p1", "GET, HEAD, PUT, DELETE"},
		{"DELETE", "/fhir/Patient", "GET, HEAD, POST"},
		{"GET", "/fhir", "POST"},
		{"POST", "/fhir/Patient/p1/_history", "GET, HEAD"},
		{"PUT", "/fhir/Patient/p1/_history/1", "GET, HEAD"},
	}
	for _, tt := range tests {
		w := th.do(tt.method, tt.path, "")
		wantStatus(t, w, http.StatusMethodNotAllowed)
		wantHeader(t, w, "Allow", tt.allow)
		decodeOutcome(t, w, "not-supported")
	}
	w := th.do("GET", "/nothing/here", "")
	wantStatus(t, w, http.StatusNotFound)
	decodeOutcome(t, w, "not-found")
	golden(t, "outcome-method.json", th.do("PATCH", "/fhir/Patient/p1", "").Body.Bytes())
}

func TestHandler_NotAcceptable(t *testing.T) {
	th := newTestHandler(t)
	th.svc.ReadFn = func(ctx context.Context, typ, id string) (*phivault.Resource, error) { return patient(id, 1), nil }
	for _, tt := range []struct{ target, accept string }{
		{"/fhir/Patient/p1?_format=xml", ""},
		{"/fhir/Patient/p1?_format=application/fhir%2Bxml", ""},
		{"/fhir/Patient/p1", "application/fhir+xml"},
		{"/fhir/Patient/p1", "application/xml, text/xml;q=0.9"},
		{"/fhir/Patient/p1", "application/json;q=0"},
		{"/fhir/metadata", "application/fhir+xml"},
	} {
		w := th.do("GET", tt.target, "", "Accept", tt.accept)
		if w.Code != http.StatusNotAcceptable {
			t.Errorf("GET %s Accept %q: status %d, want 406", tt.target, tt.accept, w.Code)
		}
	}
	for _, accept := range []string{"", "application/fhir+json", "application/json", "*/*", "text/html,application/xhtml+xml,*/*;q=0.8"} {
		w := th.do("GET", "/fhir/Patient/p1?_format=json", "", "Accept", accept)
		if w.Code != http.StatusOK {
			t.Errorf("Accept %q: status %d, want 200", accept, w.Code)
		}
	}
}

// phi is a PHI-looking value that must never leave the service layer except
// in a resource body.
const phi = "Jane Q. Public 1971-02-03 MRN-4417"

func TestHandler_UnexpectedError(t *testing.T) {
	th := newTestHandler(t)
	th.svc.SearchFn = func(ctx context.Context, q *phivault.Query) (*phivault.SearchResult, error) {
		return nil, fmt.Errorf("scan row: %w", errors.New("bad value "+phi))
	}
	w := th.do("GET", "/fhir/Patient?family=public", "")
	wantStatus(t, w, http.StatusInternalServerError)
	oo := decodeOutcome(t, w, "exception")
	if oo.Issue[0].Diagnostics != "Internal error." {
		t.Errorf("diagnostics = %q", oo.Issue[0].Diagnostics)
	}
	for where, s := range map[string]string{"response": w.Body.String(), "log": th.log.String()} {
		// The whole birth date: "1971" alone turns up in a log line's
		// nanoseconds (…40.057197156Z) about once in 2,000 runs.
		if strings.Contains(s, "Jane") || strings.Contains(s, "1971-02-03") || strings.Contains(s, "MRN-4417") || strings.Contains(s, "public") {
			t.Errorf("%s holds PHI: %s", where, s)
		}
	}
	if !strings.Contains(th.log.String(), `"error_type":"*fmt.wrapError > *errors.errorString"`) {
		t.Errorf("log does not name the error type: %s", th.log)
	}
	if n := strings.Count(th.log.String(), `"msg":"unexpected error"`); n != 1 {
		t.Errorf("error logged %d times, want once", n)
	}
}

func TestHandler_Panic(t *testing.T) {
	th := newTestHandler(t)
	th.svc.ReadFn = func(ctx context.Context, typ, id string) (*phivault.Resource, error) {
		panic("decrypted " + phi)
	}
	w := th.do("GET", "/fhir/Patient/p1", "")
	wantStatus(t, w, http.StatusInternalServerError)
	decodeOutcome(t, w, "exception")
	for where, s := range map[string]string{"response": w.Body.String(), "log": th.log.String()} {
		if strings.Contains(s, "Jane") || strings.Contains(s, "decrypted") {
			t.Errorf("%s holds the panic value: %s", where, s)
		}
	}
	if !strings.Contains(th.log.String(), `"panic_type":"string"`) {
		t.Errorf("log does not record the panic: %s", th.log)
	}
}

func TestHandler_Integrity(t *testing.T) {
	th := newTestHandler(t)
	th.svc.ReadFn = func(ctx context.Context, typ, id string) (*phivault.Resource, error) {
		return nil, fmt.Errorf("open: %w", phivault.ErrIntegrity)
	}
	w := th.do("GET", "/fhir/Patient/p1", "")
	wantStatus(t, w, http.StatusInternalServerError)
	oo := decodeOutcome(t, w, "exception")
	if !strings.Contains(oo.Issue[0].Diagnostics, "Integrity check failed") {
		t.Errorf("diagnostics = %q", oo.Issue[0].Diagnostics)
	}
	if !strings.Contains(th.log.String(), "integrity check failed") {
		t.Errorf("integrity failure not logged: %s", th.log)
	}
	golden(t, "outcome-integrity.json", w.Body.Bytes())
}

func TestHandler_LogAndMetrics(t *testing.T) {
	th := newTestHandler(t)
	th.svc.SearchFn = func(ctx context.Context, q *phivault.Query) (*phivault.SearchResult, error) {
		return &phivault.SearchResult{}, nil
	}
	w := th.do("GET", "/fhir/Patient?family=zyxwvut", "")
	wantStatus(t, w, http.StatusOK)

	var line map[string]any
	if err := json.Unmarshal(th.log.Bytes(), &line); err != nil {
		t.Fatalf("log is not one JSON line: %v: %s", err, th.log)
	}
	for k, want := range map[string]any{"msg": "request", "method": "GET", "route": "GET /fhir/{type}",
		"status": 200.0, "actor": "admin", "request_id": w.Header().Get("X-Request-Id")} {
		if line[k] != want {
			t.Errorf("log %s = %v, want %v", k, line[k], want)
		}
	}
	if strings.Contains(th.log.String(), "zyxwvut") {
		t.Errorf("log holds a search value: %s", th.log)
	}

	th.do("GET", "/fhir/Patient/p1", "", "Authorization", "")
	mfs, err := th.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string]float64)
	for _, mf := range mfs {
		if mf.GetName() != "phivault_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			got[strings.Join(labels, ",")] = m.GetCounter().GetValue()
		}
	}
	for _, k := range []string{"code=200,interaction=search-type,type=Patient", "code=401,interaction=read,type=Patient"} {
		if got[k] != 1 {
			t.Errorf("requests_total{%s} = %v, want 1 (have %v)", k, got[k], got)
		}
	}
	// A second handler on the same registry shares the collectors.
	_ = api.NewHandler(th.svc, api.Options{Registerer: th.reg})
}

// TestHandler_Metadata_installID checks that the install id is in the
// CapabilityStatement, as a valid R4 extension, for clients that must tell
// a server from a fresh one at the same URL.
func TestHandler_Metadata_installID(t *testing.T) {
	th := newTestHandler(t, func(o *api.Options) { o.InstallID = "3f2a9c1e0b7d4a6f8e5c2b1a0d9f8e7c" })
	w := th.do("GET", "/fhir/metadata", "", "Authorization", "")
	wantStatus(t, w, http.StatusOK)
	typ, obj, err := fhir.Parse(w.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if issues := fhir.Validate(typ, obj); len(issues) > 0 {
		t.Errorf("the CapabilityStatement is not valid R4: %+v", issues)
	}
	var cs struct {
		Implementation struct {
			Extension []struct{ URL, ValueID string }
		}
	}
	json.Unmarshal(w.Body.Bytes(), &cs)
	if e := cs.Implementation.Extension; len(e) != 1 || e[0].URL != api.InstallIDExtension || e[0].ValueID != "3f2a9c1e0b7d4a6f8e5c2b1a0d9f8e7c" {
		t.Errorf("implementation.extension = %+v, want the install id", e)
	}
}

// TestHandler_clientClosedRequest checks that a search whose client hung up
// is logged and counted as 499 "client closed request", not as a 500
// "unexpected error", while a failure that is not the cancellation (an
// audit entry that could not be written) stays a 500 logged as an error even
// though the client has gone away meanwhile.
func TestHandler_clientClosedRequest(t *testing.T) {
	// serve serves a search that fails with err after its client went away,
	// and returns the status, the log and the request counts by code.
	serve := func(t *testing.T, err error) (int, string, map[string]float64) {
		th := newTestHandler(t)
		th.svc.SearchFn = func(ctx context.Context, q *phivault.Query) (*phivault.SearchResult, error) {
			<-ctx.Done()
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r := httptest.NewRequest("GET", "/fhir/Patient?family=x", nil).WithContext(ctx)
		r.Header.Set("Authorization", "Bearer "+testToken)
		w := httptest.NewRecorder()
		th.ServeHTTP(w, r)
		mfs, gerr := th.reg.Gather()
		if gerr != nil {
			t.Fatal(gerr)
		}
		codes := make(map[string]float64)
		for _, mf := range mfs {
			if mf.GetName() == "phivault_http_requests_total" {
				for _, m := range mf.GetMetric() {
					for _, l := range m.GetLabel() {
						if l.GetName() == "code" {
							codes[l.GetValue()] += m.GetCounter().GetValue()
						}
					}
				}
			}
		}
		return w.Code, th.log.String(), codes
	}

	t.Run("Cancelled", func(t *testing.T) {
		// As a store reports it: the cancellation stays in the chain.
		status, log, codes := serve(t, fmt.Errorf("sqlite: find: %w", context.Canceled))
		if status != api.StatusClientClosedRequest {
			t.Errorf("status = %d, want %d", status, api.StatusClientClosedRequest)
		}
		if strings.Contains(log, "unexpected error") || strings.Contains(log, `"level":"ERROR"`) {
			t.Errorf("a cancelled request was logged as an error:\n%s", log)
		}
		if !strings.Contains(log, "client closed request") {
			t.Errorf("log does not say the client closed the request:\n%s", log)
		}
		if codes["499"] != 1 || codes["500"] != 0 {
			t.Errorf("phivault_http_requests_total by code = %v, want one 499 and no 500", codes)
		}
	})
	t.Run("OtherError", func(t *testing.T) {
		status, log, codes := serve(t, errors.New("audit: append: disk I/O error"))
		if status != http.StatusInternalServerError {
			t.Errorf("status = %d, want %d", status, http.StatusInternalServerError)
		}
		if !strings.Contains(log, "unexpected error") || !strings.Contains(log, `"level":"ERROR"`) {
			t.Errorf("a server error of a request whose client went away was not logged as an error:\n%s", log)
		}
		if strings.Contains(log, "client closed request") {
			t.Errorf("a server error was logged as a closed request:\n%s", log)
		}
		if codes["500"] != 1 || codes["499"] != 0 {
			t.Errorf("phivault_http_requests_total by code = %v, want one 500 and no 499", codes)
		}
	})
}
