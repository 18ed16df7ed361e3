package api_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/phivault/phivault"
)

// BenchmarkHandler_Read measures the read path: authenticate, call the
// service, set headers, write the body.
func BenchmarkHandler_Read(b *testing.B) {
	th := newTestHandler(b)
	res := patient("p1", 3)
	th.svc.ReadFn = func(ctx context.Context, typ, id string) (*phivault.Resource, error) { return res, nil }
	r := httptest.NewRequest("GET", "/fhir/Patient/p1", nil)
	r.Header.Set("Authorization", "Bearer "+testToken)
	th.log.Reset()
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		th.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
		th.log.Reset()
	}
}

// BenchmarkHandler_Search measures a 50-entry searchset Bundle.
func BenchmarkHandler_Search(b *testing.B) {
	th := newTestHandler(b)
	sr := &phivault.SearchResult{Total: 500}
	for i := range 50 {
		sr.Matches = append(sr.Matches, patient("p"+string(rune('a'+i%26)), 1))
	}
	th.svc.SearchFn = func(ctx context.Context, q *phivault.Query) (*phivault.SearchResult, error) { return sr, nil }
	r := httptest.NewRequest("GET", "/fhir/Patient?family=smith&_count=50", nil)
	r.Header.Set("Authorization", "Bearer "+testToken)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		th.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
		th.log.Reset()
	}
}
