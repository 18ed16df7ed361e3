package fhir

import (
	"errors"
	"math"
	"strings"
	"time"
)

// datePrefixes are the FHIR search prefixes a date value may carry.
var datePrefixes = [...]string{"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"}

// errDate is returned for a malformed date search value; it never holds the
// value.
var errDate = errors.New("fhir: malformed date value")

// DateRange parses a FHIR date search value with optional prefix into its
// prefix and the half-open UTC instant range [from, to) its precision
// implies. The prefix is "eq" when none is given. Accepted forms are YYYY,
// YYYY-MM, YYYY-MM-DD and YYYY-MM-DDThh:mm[:ss[.fff]][Z|±hh:mm]; a time
// without an offset is read as UTC, and a space before the offset is taken
// for a "+" that URL decoding turned into a space. Values without a time are
// calendar ranges: "1980-01-02" is [1980-01-02T00:00Z, 1980-01-03T00:00Z).
func DateRange(value string) (prefix string, from, to time.Time, err error) {
	prefix, from, to, _, err = parseDateQuery(value)
	return prefix, from, to, err
}

// DateSpan parses a stored FHIR date, dateTime or instant (no search
// prefix) into the half-open UTC range [from, to) its precision implies,
// as DateRange does: "2026-12-02" is the whole day.
func DateSpan(value string) (from, to time.Time, err error) {
	from, to, _, _, err = parseDate(value)
	return from, to, err
}

// parseDateQuery is DateRange that also reports whether the value has a
// time, and so whether it compares instants (true) or calendar dates.
func parseDateQuery(value string) (prefix string, from, to time.Time, hasTime bool, err error) {
	prefix = "eq"
	if len(value) >= 2 {
		for _, p := range datePrefixes {
			if value[:2] == p {
				prefix, value = p, value[2:]
				break
			}
		}
	}
	from, to, _, hasTime, err = parseDate(value)
	return prefix, from, to, hasTime, err
}

// parseDate parses a FHIR date, dateTime or instant into the UTC range its
// precision implies, and the start of that range as a civil (wall-clock)
// time in the value's own offset, written as UTC.
func parseDate(s string) (from, to, civil time.Time, hasTime bool, err error) {
	if strings.HasPrefix(s, "0000") {
		return from, to, civil, false, errDate // FHIR years start at 0001
	}
	switch len(s) {
	case 4:
		from, err = time.Parse("2006", s)
		return from, from.AddDate(1, 0, 0), from, false, wrapDate(err)
	case 7:
		from, err = time.Parse("2006-01", s)
		return from, from.AddDate(0, 1, 0), from, false, wrapDate(err)
	case 10:
		from, err = time.Parse("2006-01-02", s)
		return from, from.AddDate(0, 0, 1), from, false, wrapDate(err)
	}
	if len(s) < 16 || len(s) > 40 || s[10] != 'T' {
		return from, to, civil, false, errDate
	}
	// A "+" in a query string arrives as a space.
	s = strings.Replace(s, " ", "+", 1)
	clock := s[11:]
	zone := ""
	if i := strings.IndexAny(clock, "Z+-"); i >= 0 {
		clock, zone = clock[:i], clock[i:]
	}
	step := time.Minute
	layout := "2006-01-02T15:04"
	if len(clock) > 5 {
		layout = "2006-01-02T15:04:05"
		step = time.Second
		if len(clock) > 9 {
			if clock[8] != '.' || len(clock) > 18 {
				return from, to, civil, false, errDate
			}
			step = time.Duration(math.Pow10(9 - (len(clock) - 9)))
		}
	}
	if zone != "" {
		layout += "Z07:00"
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		return from, to, civil, false, errDate
	}
	from = t.UTC()
	civil = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
	return from, from.Add(step), civil, true, nil
}

func wrapDate(err error) error {
	if err != nil {
		return errDate
	}
	return nil
}

// dateSpan is the range of a date, dateTime, instant or Period element, both
// as UTC instants and as civil (wall-clock) times in the value's own offset,
// written as UTC. Searches with a date-only value compare civil times, so
// "2020-01-02" finds an event at 2020-01-02T23:00-05:00.
type dateSpan struct {
	lo, hi         time.Time
	civLo, civHi   time.Time
	openLo, openHi bool
}

var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// spanOf returns the range of a date-like element.
func spanOf(v any) (dateSpan, bool) {
	switch v := v.(type) {
	case string:
		return stringSpan(v)
	case map[string]any:
		start, hasStart := v["start"].(string)
		end, hasEnd := v["end"].(string)
		if !hasStart && !hasEnd {
			return dateSpan{}, false
		}
		sp := dateSpan{lo: minTime, civLo: minTime, hi: maxTime, civHi: maxTime, openLo: !hasStart, openHi: !hasEnd}
		if hasStart {
			s, ok := stringSpan(start)
			if !ok {
				return dateSpan{}, false
			}
			sp.lo, sp.civLo = s.lo, s.civLo
		}
		if hasEnd {
			e, ok := stringSpan(end)
			if !ok {
				return dateSpan{}, false
			}
			sp.hi, sp.civHi = e.hi, e.civHi
		}
		return sp, true
	}
	return dateSpan{}, false
}

func stringSpan(s string) (dateSpan, bool) {
	from, to, civil, _, err := parseDate(s)
	if err != nil {
		return dateSpan{}, false
	}
	return dateSpan{lo: from, hi: to, civLo: civil, civHi: civil.Add(to.Sub(from))}, true
}

// matchDate reports whether the target range [lo, hi) satisfies prefix
// against the search range [from, to), per FHIR date search semantics.
func matchDate(prefix string, from, to, lo, hi time.Time) bool {
	contains := !lo.Before(from) && !hi.After(to)
	switch prefix {
	case "eq":
		return contains
	case "ne":
		return !contains
	case "gt":
		return hi.After(to)
	case "lt":
		return lo.Before(from)
	case "ge":
		return hi.After(to) || contains
	case "le":
		return lo.Before(from) || contains
	case "sa":
		return !lo.Before(to)
	case "eb":
		return !hi.After(from)
	case "ap":
		// Approximately: overlaps the search range widened by 10% of its
		// width on each side.
		pad := to.Sub(from) / 10
		return lo.Before(to.Add(pad)) && hi.After(from.Add(-pad))
	}
	return false
}
