package auditlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/phivault/phivault"
)

// entryJSON is the canonical encoding of a phivault.AuditEntry: JSON with the
// fields in this order, empty fields left out, the time in UTC with
// nanoseconds. The Merkle tree hashes these bytes.
type entryJSON struct {
	Time          string   `json:"time"`
	RequestID     string   `json:"request_id,omitempty"`
	Actor         string   `json:"actor,omitempty"`
	Roles         []string `json:"roles,omitempty"`
	Client        string   `json:"client,omitempty"`
	Source        string   `json:"source,omitempty"`
	Action        string   `json:"action"`
	TargetType    string   `json:"target_type,omitempty"`
	TargetID      string   `json:"target_id,omitempty"`
	TargetVersion int64    `json:"target_version,omitempty"`
	Compartments  []string `json:"compartments,omitempty"`
	SearchParams  []string `json:"search_params,omitempty"`
	SearchValues  []string `json:"search_values,omitempty"` // raised detail only: old entries have none
	Returned      []string `json:"returned,omitempty"`
	Outcome       string   `json:"outcome"`
	Decision      string   `json:"decision,omitempty"`
	Purpose       string   `json:"purpose,omitempty"`
}

// Encode returns the canonical encoding of e, the bytes the log stores and
// hashes.
func Encode(e *phivault.AuditEntry) ([]byte, error) {
	if e.Action == "" || e.Outcome == "" {
		return nil, errors.New("auditlog: entry needs an action and an outcome")
	}
	if b, ok := appendEntry(make([]byte, 0, 384), e); ok {
		return b, nil
	}
	return json.Marshal(toJSON(e))
}

func toJSON(e *phivault.AuditEntry) entryJSON {
	return entryJSON{
		Time:          e.Time.UTC().Format(time.RFC3339Nano),
		RequestID:     e.RequestID,
		Actor:         e.Actor,
		Roles:         e.Roles,
		Client:        e.Client,
		Source:        e.Source,
		Action:        e.Action,
		TargetType:    e.TargetType,
		TargetID:      e.TargetID,
		TargetVersion: e.TargetVersion,
		Compartments:  e.Compartments,
		SearchParams:  e.SearchParams,
		SearchValues:  e.SearchValues,
		Returned:      e.Returned,
		Outcome:       e.Outcome,
		Decision:      e.Decision,
		Purpose:       e.Purpose,
	}
}

// appendEntry is Encode's fast path: it appends the bytes json.Marshal makes
// of entryJSON, and reports false, leaving the work to json.Marshal, if any
// string holds a byte that json.Marshal would escape. Entries hold ids, so
// that is rare. TestEncode_fastPath checks both give the same bytes.
func appendEntry(b []byte, e *phivault.AuditEntry) ([]byte, bool) {
	ok := true
	str := func(name, v string, always bool) {
		if v == "" && !always {
			return
		}
		if !plainJSON(v) {
			ok = false
			return
		}
		b = append(b, `,"`...)
		b = append(b, name...)
		b = append(b, `":"`...)
		b = append(b, v...)
		b = append(b, '"')
	}
	list := func(name string, vs []string) {
		if len(vs) == 0 {
			return
		}
		b = append(b, `,"`...)
		b = append(b, name...)
		b = append(b, `":[`...)
		for i, v := range vs {
			if !plainJSON(v) {
				ok = false
				return
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, v...)
			b = append(b, '"')
		}
		b = append(b, ']')
	}
	b = append(b, `{"time":"`...)
	b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	str("request_id", e.RequestID, false)
	str("actor", e.Actor, false)
	list("roles", e.Roles)
	str("client", e.Client, false)
	str("source", e.Source, false)
	str("action", e.Action, true)
	str("target_type", e.TargetType, false)
	str("target_id", e.TargetID, false)
	if e.TargetVersion != 0 {
		b = append(b, `,"target_version":`...)
		b = strconv.AppendInt(b, e.TargetVersion, 10)
	}
	list("compartments", e.Compartments)
	list("search_params", e.SearchParams)
	list("search_values", e.SearchValues)
	list("returned", e.Returned)
	str("outcome", e.Outcome, true)
	str("decision", e.Decision, false)
	str("purpose", e.Purpose, false)
	b = append(b, '}')
	return b, ok
}

// plainJSON reports whether json.Marshal writes s as is between quotes:
// printable ASCII other than the quote, the backslash and the HTML
// characters it escapes.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// Decode parses an entry encoded by Encode. It rejects anything that Encode
// would not have produced byte for byte (unknown fields, other field orders,
// extra spaces, non-UTC times), so one entry has exactly one encoding.
func Decode(data []byte) (*phivault.AuditEntry, error) {
	var w entryJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("auditlog: decode entry: %v", err)
	}
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	if err != nil {
		return nil, fmt.Errorf("auditlog: decode entry time: %v", err)
	}
	e := &phivault.AuditEntry{
		Time: t, RequestID: w.RequestID, Actor: w.Actor, Roles: w.Roles, Client: w.Client,
		Source: w.Source, Action: w.Action, TargetType: w.TargetType, TargetID: w.TargetID,
		TargetVersion: w.TargetVersion, Compartments: w.Compartments, SearchParams: w.SearchParams,
		SearchValues: w.SearchValues, Returned: w.Returned, Outcome: w.Outcome, Decision: w.Decision, Purpose: w.Purpose,
	}
	again, err := Encode(e)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, data) {
		return nil, errors.New("auditlog: entry is not in canonical form")
	}
	return e, nil
}
