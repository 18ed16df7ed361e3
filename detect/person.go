package detect

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"unicode"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// Params of the blind-index tokens detectors compare people by. They are
// apart from the FHIR search parameters ("Patient.family", …): the values
// are normalized for comparing people, not for searching, and a token of
// one never equals a token of the other.
const (
	ParamFamily  = "Person.family"  // a family name
	ParamAddress = "Person.address" // address lines + postal code
	ParamStreet  = "Person.street"  // address lines without house or unit numbers + postal code
	ParamPhone   = "Person.phone"   // a phone number, digits only
)

// Address is one postal address of a person, in plaintext.
type Address struct {
	Lines      []string // street lines, e.g. "12 Rue de la Paix", "Apt 4"
	PostalCode string
}

// PersonData is a person's family names, addresses and phones in
// plaintext, on their way to becoming tokens ([PersonTokens]). It is PHI:
// never store it, log it or put it in an error. It formats and logs as
// "redacted".
type PersonData struct {
	Family    []string
	Addresses []Address
	Phones    []string
}

// String hides the plaintext from fmt's %v and %s.
func (d PersonData) String() string { return "detect.PersonData{redacted}" }

// GoString hides the plaintext from fmt's %#v.
func (d PersonData) GoString() string { return d.String() }

// LogValue hides the plaintext from slog.
func (d PersonData) LogValue() slog.Value { return slog.StringValue("redacted") }

// Empty reports whether d has nothing to compare.
func (d *PersonData) Empty() bool {
	return len(d.Family) == 0 && len(d.Addresses) == 0 && len(d.Phones) == 0
}

// PersonValues returns the normalized values of d to turn into tokens,
// with the Param… params, without duplicates. This is the one reading of
// people for detectors: ingestion and the vault's directory loader both
// use it, so the same person read from either compares equal.
//
//   - family: each family name, normalized as the FHIR string search
//     parameters are ([fhir.NormalizeString]: lowercased, accents removed,
//     whitespace collapsed). A family name of several words is one value.
//   - address: the lines, each normalized and with punctuation turned into
//     spaces, joined by a space, then "|" and the postal code
//     ([fhir.NormalizePostalCode]: uppercased, no spaces). An address
//     without lines or without a postal code is left out: street lines
//     alone name too many homes.
//   - street: the same, without house and unit numbers (words holding a
//     digit and at most one letter, such as "12", "12b" or "4/2"; ordinals
//     such as "5th" stay) and unit words ("apt", "flat", "unit", "suite",
//     …), so neighbours in the same street and postal code compare equal.
//   - phone: digits only, a leading "+" kept ([fhir.NormalizePhone]);
//     numbers of fewer than four digits are left out.
func PersonValues(d PersonData) []phivault.IndexValue {
	var out []phivault.IndexValue
	add := func(param, value string) {
		if value != "" {
			out = append(out, phivault.IndexValue{Param: param, Value: value})
		}
	}
	for _, f := range d.Family {
		add(ParamFamily, fhir.NormalizeString(f))
	}
	for _, a := range d.Addresses {
		postal := fhir.NormalizePostalCode(a.PostalCode)
		if postal == "" {
			continue
		}
		var words []string
		for _, l := range a.Lines {
			words = append(words, strings.Fields(addressLine(l))...)
		}
		if len(words) == 0 {
			continue
		}
		add(ParamAddress, strings.Join(words, " ")+"|"+postal)
		street := slices.DeleteFunc(words, func(w string) bool { return houseNumber(w) || unitWords[w] })
		if len(street) > 0 {
			add(ParamStreet, strings.Join(street, " ")+"|"+postal)
		}
	}
	for _, p := range d.Phones {
		if n := fhir.NormalizePhone(p); digits(n) >= 4 {
			add(ParamPhone, n)
		}
	}
	slices.SortFunc(out, func(a, b phivault.IndexValue) int {
		if c := strings.Compare(a.Param, b.Param); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	})
	return slices.Compact(out)
}

// addressLine normalizes one address line: fhir.NormalizeString, with
// every character but letters and digits turned into a space.
func addressLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return r
		}
		return ' '
	}, fhir.NormalizeString(s))
}

// houseNumber reports whether w (a normalized word) is a house or unit
// number: it holds a digit and at most one letter.
func houseNumber(w string) bool {
	var d, l int
	for _, r := range w {
		if unicode.IsDigit(r) {
			d++
		} else {
			l++
		}
	}
	return d > 0 && l <= 1
}

// unitWords name the unit within a building; the street of "Apt 4, 12
// Main St" is that of "14 Main St".
var unitWords = map[string]bool{
	"apt": true, "apartment": true, "app": true, "appt": true, "flat": true, "unit": true,
	"suite": true, "ste": true, "room": true, "rm": true, "floor": true, "fl": true,
	"no": true, "nr": true, "bldg": true, "building": true, "bus": true,
}

func digits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if '0' <= s[i] && s[i] <= '9' {
			n++
		}
	}
	return n
}

// PersonFrom returns the Person of values (from PersonValues, possibly
// of several people concatenated, as long as values and tokens are cut
// alike) and their tokens, in the same order. Values of other params are
// ignored.
func PersonFrom(values []phivault.IndexValue, tokens []phivault.Token) Person {
	var p Person
	for i, v := range values {
		if i >= len(tokens) {
			break
		}
		t := tokens[i]
		switch v.Param {
		case ParamFamily:
			p.Family = appendToken(p.Family, t)
		case ParamAddress:
			p.Address = appendToken(p.Address, t)
		case ParamStreet:
			p.Street = appendToken(p.Street, t)
		case ParamPhone:
			p.Phone = appendToken(p.Phone, t)
		}
	}
	return p
}

func appendToken(ts []phivault.Token, t phivault.Token) []phivault.Token {
	if slices.Contains(ts, t) {
		return ts
	}
	return append(ts, t)
}

// PersonTokens returns the Person of d: its PersonValues turned into
// tokens by tok.
func PersonTokens(ctx context.Context, tok Tokenizer, d PersonData) (Person, error) {
	values := PersonValues(d)
	if len(values) == 0 {
		return Person{}, nil
	}
	tokens, err := tok.Tokens(ctx, values)
	if err != nil {
		return Person{}, fmt.Errorf("detect: person tokens: %w", err)
	}
	if len(tokens) != len(values) {
		return Person{}, fmt.Errorf("detect: person tokens: got %d tokens for %d values", len(tokens), len(values))
	}
	return PersonFrom(values, tokens), nil
}

// PersonDataOf reads the people-comparison data of a FHIR Patient,
// Practitioner or RelatedPerson (any resource with HumanName name,
// Address address and ContactPoint telecom): every name[].family,
// every address[] (line and postalCode) and every telecom[] with system
// "phone" (value). Addresses and phones with use "old" are left out: a
// former home says nothing about who lives together now. Elements of the
// wrong JSON type are skipped.
func PersonDataOf(obj map[string]any) PersonData {
	var d PersonData
	for _, n := range objects(obj["name"]) {
		if f, ok := n["family"].(string); ok && f != "" {
			d.Family = append(d.Family, f)
		}
	}
	for _, a := range objects(obj["address"]) {
		if a["use"] == "old" {
			continue
		}
		var addr Address
		if lines, ok := a["line"].([]any); ok {
			for _, l := range lines {
				if l, ok := l.(string); ok {
					addr.Lines = append(addr.Lines, l)
				}
			}
		}
		addr.PostalCode, _ = a["postalCode"].(string)
		if len(addr.Lines) > 0 || addr.PostalCode != "" {
			d.Addresses = append(d.Addresses, addr)
		}
	}
	for _, t := range objects(obj["telecom"]) {
		if t["system"] != "phone" || t["use"] == "old" {
			continue
		}
		if v, ok := t["value"].(string); ok && v != "" {
			d.Phones = append(d.Phones, v)
		}
	}
	return d
}

// objects returns the JSON objects of v, an array (or a lone object).
func objects(v any) []map[string]any {
	switch v := v.(type) {
	case map[string]any:
		return []map[string]any{v}
	case []any:
		out := make([]map[string]any, 0, len(v))
		for _, e := range v {
			if m, ok := e.(map[string]any); ok {
				out = append(out, m)
			}
		}
		return out
	}
	return nil
}
