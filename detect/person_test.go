package detect_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// ingestTokenizer computes blind-index tokens as the envelope does:
// HMAC-SHA256 over a random key of param ‖ 0 ‖ value, cut to 16 bytes.
type ingestTokenizer struct {
	key []byte

	mu     sync.Mutex
	calls  int
	values int
	err    error // if set, Tokens fails with it
}

func newIngestTokenizer(tb testing.TB) *ingestTokenizer {
	tb.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	return &ingestTokenizer{key: key}
}

func (t *ingestTokenizer) Tokens(ctx context.Context, values []phivault.IndexValue) ([]phivault.Token, error) {
	t.mu.Lock()
	t.calls++
	t.values += len(values)
	err := t.err
	t.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := make([]phivault.Token, len(values))
	for i, v := range values {
		out[i] = t.token(v.Param, v.Value)
	}
	return out, nil
}

func (t *ingestTokenizer) token(param, value string) phivault.Token {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(param))
	m.Write([]byte{0})
	m.Write([]byte(value))
	var tok phivault.Token
	copy(tok[:], m.Sum(nil))
	return tok
}

func TestPersonValues(t *testing.T) {
	tests := []struct {
		name string
		give detect.PersonData
		want []phivault.IndexValue
	}{
		{
			name: "accents, case and spaces",
			give: detect.PersonData{Family: []string{"  Müller-Lüdenscheid ", "MÜLLER-LÜDENSCHEID", "van  der Berg"}},
			want: []phivault.IndexValue{
				{Param: detect.ParamFamily, Value: "muller-ludenscheid"},
				{Param: detect.ParamFamily, Value: "van der berg"},
			},
		},
		{
			name: "house and unit numbers",
			give: detect.PersonData{Addresses: []detect.Address{
				{Lines: []string{"742 Evergreen Terrace,", "Apt. 3B"}, PostalCode: "sw1a 1aa"},
				{Lines: []string{"12-14 5th Avenue"}, PostalCode: "10011"},
			}},
			want: []phivault.IndexValue{
				{Param: detect.ParamAddress, Value: "12 14 5th avenue|10011"},
				{Param: detect.ParamAddress, Value: "742 evergreen terrace apt 3b|SW1A1AA"},
				{Param: detect.ParamStreet, Value: "5th avenue|10011"},
				{Param: detect.ParamStreet, Value: "evergreen terrace|SW1A1AA"},
			},
		},
		{
			name: "address without postal code or lines",
			give: detect.PersonData{Addresses: []detect.Address{
				{Lines: []string{"742 Evergreen Terrace"}},
				{PostalCode: "SW1A 1AA"},
				{Lines: []string{"12"}, PostalCode: "SW1A 1AA"}, // an address, but no street
			}},
			want: []phivault.IndexValue{{Param: detect.ParamAddress, Value: "12|SW1A1AA"}},
		},
		{
			name: "phones",
			give: detect.PersonData{Phones: []string{"+44 (20) 7946-0958", "020 7946 0958", "112", ""}},
			want: []phivault.IndexValue{
				{Param: detect.ParamPhone, Value: "+442079460958"},
				{Param: detect.ParamPhone, Value: "02079460958"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, detect.PersonValues(tt.give)); diff != "" {
				t.Errorf("PersonValues() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// Neighbours share a street but not an address; a house number with a
// letter is still a house number.
func TestPersonTokens_Neighbours(t *testing.T) {
	ctx := context.Background()
	tok := newIngestTokenizer(t)
	a := mustPersonTokens(t, tok, detect.PersonData{Addresses: []detect.Address{{Lines: []string{"12b Rue de la Paix"}, PostalCode: "75002"}}})
	b := mustPersonTokens(t, tok, detect.PersonData{Addresses: []detect.Address{{Lines: []string{"14, rue de la paix", "Appt 5"}, PostalCode: "75 002"}}})
	c := mustPersonTokens(t, tok, detect.PersonData{Addresses: []detect.Address{{Lines: []string{"12b Rue de la Paix"}, PostalCode: "75003"}}})
	if !detect.Shares(a.Street, b.Street) || detect.Shares(a.Address, b.Address) {
		t.Errorf("12b and 14 rue de la Paix, 75002: street shared %v, address shared %v; want true, false",
			detect.Shares(a.Street, b.Street), detect.Shares(a.Address, b.Address))
	}
	if detect.Shares(a.Street, c.Street) {
		t.Error("the same street in another postal code compares equal")
	}
	if _, err := detect.PersonTokens(ctx, &ingestTokenizer{err: fmt.Errorf("sealed")}, detect.PersonData{Phones: []string{"5550100"}}); err == nil {
		t.Error("PersonTokens with a failing tokenizer = nil error")
	}
}

func mustPersonTokens(tb testing.TB, tok detect.Tokenizer, d detect.PersonData) detect.Person {
	tb.Helper()
	p, err := detect.PersonTokens(context.Background(), tok, d)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestPersonDataOf(t *testing.T) {
	var patient map[string]any
	err := json.Unmarshal([]byte(`{
		"resourceType": "Patient",
		"name": [{"family": "Müller", "given": ["Zebediah"]}, {"use": "maiden", "family": "Smith"}, {"given": ["X"]}],
		"address": [
			{"line": ["742 Evergreen Terrace", 7], "postalCode": "SW1A 1AA"},
			{"use": "old", "line": ["1 Old Road"], "postalCode": "AB1 2CD"},
			{"city": "Springfield"}
		],
		"telecom": [
			{"system": "phone", "value": "+44 20 7946 0958"},
			{"system": "email", "value": "z@example.org"},
			{"system": "phone", "use": "old", "value": "555 0100"}
		]
	}`), &patient)
	if err != nil {
		t.Fatal(err)
	}
	got := detect.PersonDataOf(patient)
	want := detect.PersonData{
		Family:    []string{"Müller", "Smith"},
		Addresses: []detect.Address{{Lines: []string{"742 Evergreen Terrace"}, PostalCode: "SW1A 1AA"}},
		Phones:    []string{"+44 20 7946 0958"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PersonDataOf() mismatch (-want +got):\n%s", diff)
	}
	if got := detect.PersonDataOf(map[string]any{"name": "Smith", "address": 3, "telecom": []any{"x"}}); !got.Empty() {
		t.Errorf("PersonDataOf(wrong types) = %d families, %d addresses, %d phones; want none",
			len(got.Family), len(got.Addresses), len(got.Phones))
	}
}

// PersonData never prints or logs its plaintext.
func TestPersonData_Redacted(t *testing.T) {
	d := detect.PersonData{Family: []string{"Zebediah"}, Phones: []string{"5550100"}}
	var log strings.Builder
	slog.New(slog.NewTextHandler(&log, nil)).Info("x", "person", d)
	for _, s := range []string{fmt.Sprint(d), fmt.Sprintf("%+v %#v %s", d, d, d), log.String()} {
		if strings.Contains(s, "Zebediah") || strings.Contains(s, "5550100") {
			t.Errorf("PersonData printed as %q", s)
		}
	}
}
