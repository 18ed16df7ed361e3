package auditlog_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/mock"
)

// fakeLog is a phivault.AuditLog that keeps entries in memory, or fails.
type fakeLog struct {
	mu      sync.Mutex
	entries []*phivault.AuditEntry
	fail    error
}

func (l *fakeLog) Append(ctx context.Context, entries ...*phivault.AuditEntry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return l.fail
	}
	l.entries = append(l.entries, entries...)
	return nil
}

var obs = &phivault.Resource{Type: "Observation", ID: "o1", Version: 3, Compartment: "p1", Body: []byte(`{"resourceType":"Observation","note":"Jane Doe"}`)}

func reqCtx() context.Context {
	return phivault.WithRequestInfo(context.Background(), phivault.RequestInfo{ID: "r1", Actor: "admin", Source: "192.0.2.1"})
}

func TestRecordService_Read(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		log := &fakeLog{}
		next := &mock.RecordService{ReadFn: func(ctx context.Context, typ, id string) (*phivault.Resource, error) { return obs, nil }}
		got, err := auditlog.NewRecordService(next, log).Read(reqCtx(), "Observation", "o1")
		if err != nil || got != obs {
			t.Fatalf("Read() = %v, %v", got, err)
		}
		if len(log.entries) != 1 {
			t.Fatalf("log has %d entries, want 1", len(log.entries))
		}
		e := log.entries[0]
		if e.Action != "read" || e.Actor != "admin" || e.RequestID != "r1" || e.Source != "192.0.2.1" || e.Outcome != "ok" ||
			e.TargetVersion != 3 || !slices.Equal(e.Compartments, []string{"p1"}) ||
			!slices.Equal(e.Returned, []string{"Observation/o1/_history/3"}) {
			t.Errorf("entry = %+v", e)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		log := &fakeLog{}
		next := &mock.RecordService{ReadFn: func(ctx context.Context, typ, id string) (*phivault.Resource, error) {
			return nil, phivault.ErrNotFound
		}}
		_, err := auditlog.NewRecordService(next, log).Read(reqCtx(), "Observation", "o1")
		if phivault.ErrorCode(err) != phivault.ENOTFOUND {
			t.Fatalf("Read() error = %v, want ENOTFOUND", err)
		}
		if len(log.entries) != 1 || log.entries[0].Outcome != phivault.ENOTFOUND {
			t.Errorf("failed attempt not recorded: %+v", log.entries)
		}
	})
	t.Run("ErrUnavailable", func(t *testing.T) {
		log := &fakeLog{fail: errors.New("disk full")}
		next := &mock.RecordService{ReadFn: func(ctx context.Context, typ, id string) (*phivault.Resource, error) { return obs, nil }}
		got, err := auditlog.NewRecordService(next, log).Read(reqCtx(), "Observation", "o1")
		if got != nil || phivault.ErrorCode(err) != phivault.EUNAVAILABLE {
			t.Fatalf("Read() with a failing log = %v, %v; want nil, EUNAVAILABLE", got, err)
		}
	})
}

// TestRecordService_failClosed checks every method returns no data and
// EUNAVAILABLE when the log fails.
func TestRecordService_failClosed(t *testing.T) {
	ctx := reqCtx()
	page := &phivault.SearchResult{Total: 1, Matches: []*phivault.Resource{obs}}
	next := &mock.RecordService{
		CreateFn: func(context.Context, string, []byte, phivault.CreateOptions) (*phivault.Resource, bool, error) {
			return obs, true, nil
		},
		ReadFn:  func(context.Context, string, string) (*phivault.Resource, error) { return obs, nil },
		VReadFn: func(context.Context, string, string, int64) (*phivault.Resource, error) { return obs, nil },
		UpdateFn: func(context.Context, string, string, []byte, phivault.UpdateOptions) (*phivault.Resource, bool, error) {
			return obs, false, nil
		},
		DeleteFn: func(context.Context, string, string) error { return nil },
		HistoryFn: func(context.Context, phivault.HistoryQuery) (*phivault.HistoryResult, error) {
			return &phivault.HistoryResult{Total: 1, Versions: []*phivault.Resource{obs}}, nil
		},
		SearchFn:     func(context.Context, *phivault.Query) (*phivault.SearchResult, error) { return page, nil },
		EverythingFn: func(context.Context, string, int, int) (*phivault.SearchResult, error) { return page, nil },
		BundleFn: func(context.Context, []byte, string) (*phivault.BundleResult, error) {
			return &phivault.BundleResult{Body: []byte(`{"resourceType":"Bundle"}`)}, nil
		},
	}
	s := auditlog.NewRecordService(next, &fakeLog{fail: errors.New("disk full")})
	check := func(name string, data any, err error) {
		t.Helper()
		if phivault.ErrorCode(err) != phivault.EUNAVAILABLE {
			t.Errorf("%s error = %v, want EUNAVAILABLE", name, err)
		}
		if data != nil && !isNil(data) {
			t.Errorf("%s returned data with a failing audit log", name)
		}
	}
	r, _, err := s.Create(ctx, "Observation", nil, phivault.CreateOptions{})
	check("Create", r, err)
	r, err = s.Read(ctx, "Observation", "o1")
	check("Read", r, err)
	r, err = s.VRead(ctx, "Observation", "o1", 3)
	check("VRead", r, err)
	r, _, err = s.Update(ctx, "Observation", "o1", nil, phivault.UpdateOptions{})
	check("Update", r, err)
	check("Delete", nil, s.Delete(ctx, "Observation", "o1"))
	h, err := s.History(ctx, phivault.HistoryQuery{Type: "Observation", ID: "o1"})
	check("History", h, err)
	p, err := s.Search(ctx, &phivault.Query{Type: "Observation"})
	check("Search", p, err)
	p, err = s.Everything(ctx, "p1", 0, 0)
	check("Everything", p, err)
	b, err := s.Bundle(ctx, nil, "https://x/fhir")
	check("Bundle", b, err)
}

func isNil(v any) bool {
	switch v := v.(type) {
	case *phivault.Resource:
		return v == nil
	case *phivault.HistoryResult:
		return v == nil
	case *phivault.SearchResult:
		return v == nil
	case *phivault.BundleResult:
		return v == nil
	}
	return false
}

func TestRecordService_Search(t *testing.T) {
	log := &fakeLog{}
	inc := &phivault.Resource{Type: "Patient", ID: "p1", Version: 1, Compartment: "p1"}
	next := &mock.RecordService{SearchFn: func(context.Context, *phivault.Query) (*phivault.SearchResult, error) {
		return &phivault.SearchResult{Total: 1, Matches: []*phivault.Resource{obs}, Included: []*phivault.Resource{inc}}, nil
	}}
	q := &phivault.Query{Type: "Observation", Params: []phivault.QueryParam{
		{Name: "subject", Modifier: "Patient", Values: []string{"p1"}},
		{Name: "code", Values: []string{"http://loinc.org|8867-4"}},
	}}
	if _, err := auditlog.NewRecordService(next, log).Search(reqCtx(), q); err != nil {
		t.Fatal(err)
	}
	e := log.entries[0]
	if !slices.Equal(e.SearchParams, []string{"subject:Patient", "code"}) {
		t.Errorf("SearchParams = %q", e.SearchParams)
	}
	if !slices.Equal(e.Returned, []string{"Observation/o1/_history/3", "Patient/p1/_history/1"}) || !slices.Equal(e.Compartments, []string{"p1"}) {
		t.Errorf("Returned = %q, Compartments = %q", e.Returned, e.Compartments)
	}
	b, _ := auditlog.Encode(e)
	if strings.Contains(string(b), "8867") {
		t.Errorf("entry holds a search value: %s", b)
	}
}

func TestRecordService_Bundle(t *testing.T) {
	log := &fakeLog{}
	next := &mock.RecordService{BundleFn: func(context.Context, []byte, string) (*phivault.BundleResult, error) {
		return &phivault.BundleResult{Body: []byte(`{"resourceType":"Bundle","entry":[
			{"response":{"status":"201 Created","location":"https://x/fhir/Patient/p9/_history/1"}},
			{"resource":{"resourceType":"Observation","id":"o2","meta":{"versionId":"4"},"note":"Jane"}}]}`)}, nil
	}}
	if _, err := auditlog.NewRecordService(next, log).Bundle(reqCtx(), nil, "https://x/fhir"); err != nil {
		t.Fatal(err)
	}
	if got := log.entries[0].Returned; !slices.Equal(got, []string{"Patient/p9/_history/1", "Observation/o2/_history/4"}) {
		t.Errorf("Returned = %q", got)
	}
}

func TestRecordService_Create_failed(t *testing.T) {
	log := &fakeLog{}
	next := &mock.RecordService{CreateFn: func(context.Context, string, []byte, phivault.CreateOptions) (*phivault.Resource, bool, error) {
		return nil, false, &phivault.Error{Code: phivault.EUNPROCESSABLE, Message: "bad"}
	}}
	_, _, err := auditlog.NewRecordService(next, log).Create(reqCtx(), "Observation", []byte(`{}`), phivault.CreateOptions{})
	if phivault.ErrorCode(err) != phivault.EUNPROCESSABLE {
		t.Fatalf("Create() error = %v", err)
	}
	if len(log.entries) != 1 || log.entries[0].Outcome != phivault.EUNPROCESSABLE || log.entries[0].Action != "create" {
		t.Errorf("entries = %+v", log.entries)
	}
}

// shredFunc is an auditlog.Shredder.
type shredFunc func(ctx context.Context, patientID string) (time.Time, error)

func (f shredFunc) Shred(ctx context.Context, patientID string) (time.Time, error) {
	return f(ctx, patientID)
}

// TestShredder_Shred checks the outcome a shred is recorded with: "ok" for
// a shred that is done, including one whose erasure of the old key bytes
// is pending (with the time and the error passed on, so the caller can say
// so), and the error's code for one that failed.
func TestShredder_Shred(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	pending := fmt.Errorf("sqlite: readers kept the write-ahead log busy: %w", phivault.ErrErasePending)
	for _, tt := range []struct {
		name        string
		giveAt      time.Time
		giveErr     error
		wantOutcome string
		wantAt      time.Time
	}{
		{"OK", at, nil, "ok", at},
		{"ErasePending", at, pending, "ok", at},
		{"ErrNotFound", time.Time{}, phivault.ErrNotFound, phivault.ENOTFOUND, time.Time{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			log := &fakeLog{}
			s := auditlog.NewShredder(shredFunc(func(context.Context, string) (time.Time, error) { return tt.giveAt, tt.giveErr }), log)
			got, err := s.Shred(reqCtx(), "p1")
			if !got.Equal(tt.wantAt) || err != tt.giveErr {
				t.Errorf("Shred() = %v, %v; want %v, %v", got, err, tt.wantAt, tt.giveErr)
			}
			if len(log.entries) != 1 || log.entries[0].Outcome != tt.wantOutcome || log.entries[0].Action != phivault.ActionShred {
				t.Fatalf("entries = %+v, want one shred with outcome %q", log.entries, tt.wantOutcome)
			}
		})
	}
}
