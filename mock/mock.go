// Package mock provides test doubles for the phivault service interfaces.
// Each double has one func field per method; a test sets the fields it
// expects to be called and the double records whether they were.
package mock

import (
	"context"

	"github.com/phivault/phivault"
)

var _ phivault.RecordService = (*RecordService)(nil)

// RecordService is a phivault.RecordService whose methods call the matching
// func fields. Calling a method whose field is nil panics, which fails the
// test that did not expect the call.
type RecordService struct {
	CreateFn          func(ctx context.Context, typ string, body []byte, opts phivault.CreateOptions) (*phivault.Resource, bool, error)
	CreateInvoked     bool
	ReadFn            func(ctx context.Context, typ, id string) (*phivault.Resource, error)
	ReadInvoked       bool
	VReadFn           func(ctx context.Context, typ, id string, version int64) (*phivault.Resource, error)
	VReadInvoked      bool
	UpdateFn          func(ctx context.Context, typ, id string, body []byte, opts phivault.UpdateOptions) (*phivault.Resource, bool, error)
	UpdateInvoked     bool
	DeleteFn          func(ctx context.Context, typ, id string) error
	DeleteInvoked     bool
	HistoryFn         func(ctx context.Context, q phivault.HistoryQuery) (*phivault.HistoryResult, error)
	HistoryInvoked    bool
	SearchFn          func(ctx context.Context, q *phivault.Query) (*phivault.SearchResult, error)
	SearchInvoked     bool
	EverythingFn      func(ctx context.Context, patientID string, count, offset int) (*phivault.SearchResult, error)
	EverythingInvoked bool
	BundleFn          func(ctx context.Context, body []byte, base string) (*phivault.BundleResult, error)
	BundleInvoked     bool
}

func (s *RecordService) Create(ctx context.Context, typ string, body []byte, opts phivault.CreateOptions) (*phivault.Resource, bool, error) {
	s.CreateInvoked = true
	return s.CreateFn(ctx, typ, body, opts)
}

func (s *RecordService) Read(ctx context.Context, typ, id string) (*phivault.Resource, error) {
	s.ReadInvoked = true
	return s.ReadFn(ctx, typ, id)
}

func (s *RecordService) VRead(ctx context.Context, typ, id string, version int64) (*phivault.Resource, error) {
	s.VReadInvoked = true
	return s.VReadFn(ctx, typ, id, version)
}

func (s *RecordService) Update(ctx context.Context, typ, id string, body []byte, opts phivault.UpdateOptions) (*phivault.Resource, bool, error) {
	s.UpdateInvoked = true
	return s.UpdateFn(ctx, typ, id, body, opts)
}

func (s *RecordService) Delete(ctx context.Context, typ, id string) error {
	s.DeleteInvoked = true
	return s.DeleteFn(ctx, typ, id)
}

func (s *RecordService) History(ctx context.Context, q phivault.HistoryQuery) (*phivault.HistoryResult, error) {
	s.HistoryInvoked = true
	return s.HistoryFn(ctx, q)
}

func (s *RecordService) Search(ctx context.Context, q *phivault.Query) (*phivault.SearchResult, error) {
	s.SearchInvoked = true
	return s.SearchFn(ctx, q)
}

func (s *RecordService) Everything(ctx context.Context, patientID string, count, offset int) (*phivault.SearchResult, error) {
	s.EverythingInvoked = true
	return s.EverythingFn(ctx, patientID, count, offset)
}

func (s *RecordService) Bundle(ctx context.Context, body []byte, base string) (*phivault.BundleResult, error) {
	s.BundleInvoked = true
	return s.BundleFn(ctx, body, base)
}
