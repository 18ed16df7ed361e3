package drivermemo_test

import (
	"errors"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/internal/drivermemo"
)

func TestMemoDriver(t *testing.T) {
	errPick := errors.New("sample failed")
	groups := func() [][]phivault.Token {
		return [][]phivault.Token{{{1}}, {{2}, {3}}, {{4}}}
	}
	a, b := groups(), groups() // equal contents, different slices
	one := [][]phivault.Token{{{1}}}

	// Each step runs on the same Memo, in order.
	steps := []struct {
		name     string
		groups   [][]phivault.Token
		pick     int   // what pick returns
		pickErr  error // what pick fails with
		want     int
		wantErr  error
		wantPick bool // whether pick must be called
	}{
		{name: "no groups", groups: nil, pick: 7, want: -1},
		{name: "one group", groups: one, pick: 7, want: 0},
		{name: "failed pick", groups: a, pickErr: errPick, wantErr: errPick, wantPick: true},
		{name: "failed pick not remembered", groups: a, pick: 2, want: 2, wantPick: true},
		{name: "same slice", groups: a, pick: 1, want: 2},
		{name: "equal but different slice", groups: b, pick: 1, want: 1, wantPick: true},
		{name: "shorter slice, same first element", groups: b[:2], pick: 0, want: 0, wantPick: true},
		{name: "failed pick keeps the last choice", groups: a, pickErr: errPick, wantErr: errPick, wantPick: true},
		{name: "last choice after a failure", groups: b[:2], pick: 1, want: 0},
	}
	var m drivermemo.Memo
	for _, s := range steps {
		picked := false
		got, err := m.Driver(s.groups, func() (int, error) {
			picked = true
			return s.pick, s.pickErr
		})
		if !errors.Is(err, s.wantErr) {
			t.Fatalf("%s: err = %v, want %v", s.name, err, s.wantErr)
		}
		if err == nil && got != s.want {
			t.Errorf("%s: Driver = %d, want %d", s.name, got, s.want)
		}
		if picked != s.wantPick {
			t.Errorf("%s: pick called = %t, want %t", s.name, picked, s.wantPick)
		}
	}
}
