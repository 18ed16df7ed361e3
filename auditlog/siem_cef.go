package auditlog

import (
	"net"
	"strconv"
	"strings"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/internal/cef"
)

// CEF severities (0 to 10) of audit entries.
const (
	cefSeverityOK         = 3 // allowed and done
	cefSeverityFailed     = 5 // failed for another reason (bad input, conflict…)
	cefSeverityDenied     = 6 // refused: forbidden or unauthenticated
	cefSeverityBreakGlass = 8 // emergency access: review it
	cefSeverityIntegrity  = 9 // stored data failed authentication
)

// CEF returns entry e, at index in the log named origin, as one ArcSight
// Common Event Format (revision 25) line, without a trailing newline:
//
//	CEF:0|phivault|phivault|VERSION|ACTION|NAME|SEVERITY|EXTENSIONS
//
// The signature id is the entry's action; the name is the action and target
// type, with the outcome if it is not "ok"; the severity is 3 for success,
// 5 for a failure, 6 for a denial (forbidden, unauthorized), 8 for
// break-the-glass access, 9 for an integrity failure. In the header '\' and
// '|' are escaped with a backslash; in extension values '\', '=' and line
// breaks ("\n", "\r") are. Other control characters become spaces.
//
// Extensions, in this order, each left out when empty:
//
//	rt                                   entry time, milliseconds since the epoch
//	externalId                           the entry's index in the log
//	deviceExternalId                     the log's origin (checkpoint key name)
//	act, outcome                         Action, Outcome
//	suid, spriv                          Actor, Roles (space-separated)
//	src or shost                         Source (src if it is an IP address)
//	cs1Label=requestId cs1               RequestID
//	cs2Label=clientId cs2                Client
//	cs3Label=decision cs3                Decision
//	cs4Label=purposeOfUse cs4            Purpose
//	cs5Label=patients cs5                Compartments (space-separated, ≤ 4,000 chars)
//	cn1Label=patientCount cn1            how many compartments
//	cs6Label=returned cs6                Returned versions (space-separated, ≤ 4,000 chars)
//	cn2Label=returnedCount cn2           how many versions were returned
//	flexString1Label=target flexString1  the target, Type/id/_history/n
//	flexString2Label=searchParams …      SearchParams (names only, space-separated)
//
// Like the entry, the line holds ids only, never PHI. A SIEM that needs a
// list cut short reads the whole entry by its index (externalId) from the
// NDJSON export.
func CEF(index int64, origin, version string, e *phivault.AuditEntry) string {
	name := e.Action
	if e.TargetType != "" {
		name += " " + e.TargetType
	}
	if e.Outcome != "ok" {
		name += ": " + e.Outcome
	}
	l := cef.NewLine("phivault", "phivault", version, e.Action, name, cefSeverity(e))
	ext, labelled := l.Ext, l.Labelled
	ext("rt", strconv.FormatInt(e.Time.UnixMilli(), 10))
	ext("externalId", strconv.FormatInt(index, 10))
	ext("deviceExternalId", origin)
	ext("act", e.Action)
	ext("outcome", e.Outcome)
	ext("suid", e.Actor)
	ext("spriv", strings.Join(e.Roles, " "))
	if net.ParseIP(e.Source) != nil {
		ext("src", e.Source)
	} else {
		ext("shost", e.Source)
	}
	labelled("cs1", "requestId", e.RequestID)
	labelled("cs2", "clientId", e.Client)
	labelled("cs3", "decision", e.Decision)
	labelled("cs4", "purposeOfUse", e.Purpose)
	if len(e.Compartments) > 0 {
		labelled("cs5", "patients", cef.List(e.Compartments))
		labelled("cn1", "patientCount", strconv.Itoa(len(e.Compartments)))
	}
	if len(e.Returned) > 0 {
		labelled("cs6", "returned", cef.List(e.Returned))
		labelled("cn2", "returnedCount", strconv.Itoa(len(e.Returned)))
	}
	if e.TargetType != "" || e.TargetID != "" {
		target := e.TargetType
		if e.TargetID != "" {
			target += "/" + e.TargetID
			if e.TargetVersion > 0 {
				target += "/_history/" + strconv.FormatInt(e.TargetVersion, 10)
			}
		}
		labelled("flexString1", "target", target)
	}
	labelled("flexString2", "searchParams", strings.Join(e.SearchParams, " "))
	return l.String()
}

func cefSeverity(e *phivault.AuditEntry) int {
	switch {
	case e.Outcome == phivault.EINTEGRITY:
		return cefSeverityIntegrity
	case e.Action == phivault.ActionBreakGlass || strings.HasPrefix(e.Decision, "break-glass"):
		return cefSeverityBreakGlass
	case e.Outcome == phivault.EFORBIDDEN || e.Outcome == phivault.EUNAUTHORIZED:
		return cefSeverityDenied
	case e.Outcome != "ok":
		return cefSeverityFailed
	}
	return cefSeverityOK
}
