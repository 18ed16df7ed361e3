package auditlog_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/mock"
)

// fakeDetail raises the detail of one actor, with made-up tokens.
type fakeDetail struct {
	actor string
	fail  error
}

func (d fakeDetail) SearchValues(_ context.Context, actor string, _ time.Time, q *phivault.Query) ([]string, error) {
	if d.fail != nil {
		return nil, d.fail
	}
	if actor != d.actor {
		return nil, nil
	}
	var out []string
	for _, p := range q.Params {
		for range p.Values {
			out = append(out, p.Name+"=00ff")
		}
	}
	return out, nil
}

// TestRecordService_SearchValues checks that the raised detail is
// recorded in the entry, and encodes and decodes with it; that other
// actors' entries stay as they were; and that a search whose tokens
// cannot be made returns no data.
func TestRecordService_SearchValues(t *testing.T) {
	next := &mock.RecordService{SearchFn: func(context.Context, *phivault.Query) (*phivault.SearchResult, error) {
		return &phivault.SearchResult{Total: 1, Matches: []*phivault.Resource{obs}}, nil
	}}
	q := &phivault.Query{Type: "Patient", Params: []phivault.QueryParam{{Name: "name", Values: []string{"Doe", "Roe"}}}}
	for _, tc := range []struct {
		actor string
		want  []string
	}{{"admin", []string{"name=00ff", "name=00ff"}}, {"someone-else", nil}} {
		log := &fakeLog{}
		rs := auditlog.NewRecordService(next, log)
		rs.Detail = fakeDetail{actor: tc.actor}
		if _, err := rs.Search(reqCtx(), q); err != nil {
			t.Fatal(err)
		}
		want := tc.want
		if tc.actor != "admin" { // reqCtx's actor is admin
			want = nil
		}
		e := log.entries[0]
		if !slices.Equal(e.SearchValues, want) {
			t.Fatalf("raised for %s: SearchValues = %q, want %q", tc.actor, e.SearchValues, want)
		}
		b, err := auditlog.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "Doe") {
			t.Fatalf("entry holds a search value: %s", b)
		}
		if strings.Contains(string(b), "search_values") != (want != nil) {
			t.Fatalf("encoding %s", b)
		}
		got, err := auditlog.Decode(b)
		if err != nil || !slices.Equal(got.SearchValues, want) {
			t.Fatalf("Decode = %+v, %v", got, err)
		}
	}
	log := &fakeLog{}
	rs := auditlog.NewRecordService(next, log)
	rs.Detail = fakeDetail{fail: errors.New("sealed")}
	res, err := rs.Search(reqCtx(), q)
	if res != nil || phivault.ErrorCode(err) != phivault.EUNAVAILABLE {
		t.Fatalf("Search without tokens = %v, %v; want no data and EUNAVAILABLE", res, err)
	}
	if len(log.entries) != 1 || log.entries[0].Outcome != phivault.EUNAVAILABLE {
		t.Fatalf("entries %+v", log.entries)
	}
}

// TestDecode_beforeSearchValues checks that an entry encoded before
// SearchValues existed still decodes to the same bytes (its hash, and so
// the tree, are unchanged).
func TestDecode_beforeSearchValues(t *testing.T) {
	old := `{"time":"2026-01-02T03:04:05.000000006Z","request_id":"r1","actor":"u1","action":"search","target_type":"Patient","search_params":["name"],"returned":["Patient/p1/_history/1"],"outcome":"ok","decision":"permit: x"}`
	e, err := auditlog.Decode([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	again, err := auditlog.Encode(e)
	if err != nil || string(again) != old {
		t.Fatalf("re-encoded %s, %v", again, err)
	}
}
