// Package cef implements the escaping rules of ArcSight's Common Event
// Format (revision 25), shared by every package that writes CEF lines (the
// audit trail's SIEM forwarder and the detector's alerts), so that both
// read the format one way.
package cef

import "strings"

// MaxList bounds the characters of a list-valued extension (cs5, cs6…):
// ArcSight's deviceCustomString fields hold 4,000.
const MaxList = 4000

// Header escapes a header field: backslash and pipe get a backslash;
// line breaks and other control characters, not allowed in a header,
// become spaces.
func Header(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c == '\\' || c == '|':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c < 0x20 || c == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// Value escapes an extension value: backslash and equals sign get a
// backslash, line breaks are written \n and \r, and other control
// characters become spaces. Pipes need no escaping in extensions.
func Value(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c == '\\' || c == '=':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c < 0x20 || c == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// List joins values with spaces, cut at a space so it stays within
// MaxList characters.
func List(values []string) string {
	var b strings.Builder
	for _, v := range values {
		if b.Len()+1+len(v) > MaxList {
			break
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(v)
	}
	return b.String()
}
