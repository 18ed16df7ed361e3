package auditlog_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
)

func TestQuery_ParseDate(t *testing.T) {
	day := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in            string
		since, before time.Time
	}{
		{"2025-03-01", day, day.AddDate(0, 0, 1)},
		{"eq2025-03", day, day.AddDate(0, 1, 0)},
		{"ge2025-03-01", day, time.Time{}},
		{"gt2025-03-01", day.AddDate(0, 0, 1), time.Time{}},
		{"lt2025-03-01", time.Time{}, day},
		{"le2025-03-01T10:00:00Z", time.Time{}, day.Add(10*time.Hour + time.Second)},
		{"ge2025-03-01T10:00:00+02:00", day.Add(8 * time.Hour), time.Time{}},
	} {
		var q auditlog.Query
		if err := q.ParseDate(c.in); err != nil || !q.Since.Equal(c.since) || !q.Before.Equal(c.before) {
			t.Errorf("ParseDate(%q) = [%v, %v), %v; want [%v, %v)", c.in, q.Since, q.Before, err, c.since, c.before)
		}
	}
	for _, bad := range []string{"", "yesterday", "xx2025", "ap2025-03-01", "2025-13-01"} {
		var q auditlog.Query
		if err := q.ParseDate(bad); phivault.ErrorCode(err) != phivault.EINVALID {
			t.Errorf("ParseDate(%q) = %v, want EINVALID", bad, err)
		}
	}
}

func TestNewAuditEvent(t *testing.T) {
	e := &phivault.AuditEntry{
		Time: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), Actor: "u1", Client: "app7", Source: "10.0.0.5",
		Action: phivault.ActionVRead, TargetType: "Observation", TargetID: "o1", TargetVersion: 2,
		Compartments: []string{"p1"}, Outcome: phivault.EFORBIDDEN, Purpose: "TREAT",
	}
	b, err := json.Marshal(auditlog.NewAuditEvent(17, e))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{
		`"resourceType":"AuditEvent"`, `"id":"17"`, `"code":"rest"`, `"code":"vread"`, `"action":"R"`,
		`"recorded":"2025-03-01T12:00:00Z"`, `"outcome":"4"`, `"outcomeDesc":"forbidden"`,
		`"code":"TREAT"`, `"identifier":{"value":"u1"}`, `"requestor":true`, `"address":"10.0.0.5","type":"2"`,
		`"identifier":{"value":"app7"}`, `"reference":"Patient/p1"`, `"reference":"Observation/o1/_history/2"`,
		`"observer":{"display":"phivault"}`, "IHE.BasicAudit.Read",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("AuditEvent lacks %s:\n%s", want, s)
		}
	}
}

func TestNewAuditEvent_decision(t *testing.T) {
	for _, c := range []struct {
		decision   string
		policies   []string
		breakGlass bool
	}{
		{"", nil, false},
		{"permit: physician-care-team", []string{"urn:phivault:policy:physician-care-team"}, false},
		{"permit: a,b; withheld 3", []string{"urn:phivault:policy:a", "urn:phivault:policy:b"}, false},
		{"break-glass permit: break-glass-grant", []string{"urn:phivault:policy:break-glass-grant"}, true},
		{"deny: bundle entry 3", nil, false},
	} {
		ev := auditlog.NewAuditEvent(1, &phivault.AuditEntry{Action: phivault.ActionRead, Outcome: "ok", Decision: c.decision})
		if got := ev.Agent[0].Policy; !slices.Equal(got, c.policies) {
			t.Errorf("%q: agent.policy = %q; want %q", c.decision, got, c.policies)
		}
		btg := len(ev.PurposeOfEvent) == 1 && ev.PurposeOfEvent[0].Coding[0].Code == "BTG"
		if btg != c.breakGlass {
			t.Errorf("%q: purposeOfEvent = %+v; want BTG %v", c.decision, ev.PurposeOfEvent, c.breakGlass)
		}
	}
}
