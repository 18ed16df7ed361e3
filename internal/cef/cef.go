// Package cef implements the escaping rules of ArcSight's Common Event
// Format (revision 25), shared by every package that writes CEF lines (the
// audit trail's SIEM forwarder and the detector's alerts), so that both
// read the format one way.
package cef

import (
	"strconv"
	"strings"
)

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

// Line builds one CEF line: the header, then extensions in the order
// added. Create it with NewLine.
type Line struct {
	b   strings.Builder
	ext bool
}

// NewLine starts a line with the header fields, escaped:
//
//	CEF:0|vendor|product|version|signature|name|severity|
func NewLine(vendor, product, version, signature, name string, severity int) *Line {
	l := &Line{}
	l.b.WriteString("CEF:0")
	for _, f := range []string{vendor, product, version, signature, name} {
		l.b.WriteByte('|')
		l.b.WriteString(Header(f))
	}
	l.b.WriteByte('|')
	l.b.WriteString(strconv.Itoa(severity))
	l.b.WriteByte('|')
	return l
}

// Ext adds the extension key=value, value escaped; an empty value is
// left out.
func (l *Line) Ext(key, value string) {
	if value == "" {
		return
	}
	if l.ext {
		l.b.WriteByte(' ')
	}
	l.ext = true
	l.b.WriteString(key)
	l.b.WriteByte('=')
	l.b.WriteString(Value(value))
}

// Labelled adds a custom extension with its label (key+"Label"=label
// key=value), unless value is empty.
func (l *Line) Labelled(key, label, value string) {
	if value != "" {
		l.Ext(key+"Label", label)
		l.Ext(key, value)
	}
}

// String returns the line.
func (l *Line) String() string { return l.b.String() }
