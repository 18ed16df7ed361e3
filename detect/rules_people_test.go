package detect_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/detect"
)

// tok returns a test token: any 16 bytes will do.
func peopleTok(s string) phivault.Token {
	var t phivault.Token
	copy(t[:], s)
	return t
}

func peopleToks(s ...string) []phivault.Token {
	out := make([]phivault.Token, len(s))
	for i, v := range s {
		out[i] = peopleTok(v)
	}
	return out
}

var peopleNow = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

// peopleDir is a small hospital: nurse u1, who is also patient pu1, and
// the patients she might look at.
func peopleDir() *detect.Directory {
	d := detect.NewDirectory()
	me := detect.Person{Family: peopleToks("fam-u1"), Address: peopleToks("addr-u1"), Street: peopleToks("street-u1"), Phone: peopleToks("phone-u1")}
	d.PutUser(&detect.User{ID: "u1", Roles: []string{"nurse"}, Department: "er", Practitioner: "pr1", Patient: "pu1", Person: me})
	d.PutUser(&detect.User{ID: "u2", Roles: []string{"physician"}, Person: detect.Person{Family: peopleToks("fam-u2"), Address: peopleToks("addr-u2")}})
	d.PutUser(&detect.User{ID: "clerk", Roles: []string{"front-desk"}, Person: detect.Person{Address: peopleToks("addr-clerk")}})
	d.PutUser(&detect.User{ID: "pat", Roles: []string{detect.PatientRole}, Patient: "pfam", Person: me})
	d.PutUser(&detect.User{ID: "portal", Patient: "pvip", Person: me}) // a patient account, no roles
	put := func(p *detect.Patient) { d.PutPatient(p) }
	put(&detect.Patient{ID: "pu1", Labels: []string{detect.LabelEmployee}, Employee: "u1", Person: me})
	put(&detect.Patient{ID: "pself2", Employee: "u1"}) // a second record of u1, linked only from the patient's side
	put(&detect.Patient{ID: "pfam", Person: detect.Person{Family: peopleToks("fam-u1"), Address: peopleToks("addr-u1"), Street: peopleToks("street-u1")}})
	put(&detect.Patient{ID: "pflat", Person: detect.Person{Family: peopleToks("fam-other"), Address: peopleToks("addr-u1"), Street: peopleToks("street-u1")}})
	put(&detect.Patient{ID: "pphone", Person: detect.Person{Address: peopleToks("addr-far"), Street: peopleToks("street-far"), Phone: peopleToks("phone-u1")}})
	put(&detect.Patient{ID: "pnamesake", Person: detect.Person{Family: peopleToks("fam-u1"), Address: peopleToks("addr-far2"), Street: peopleToks("street-far2")}})
	put(&detect.Patient{ID: "pneigh", Person: detect.Person{Address: peopleToks("addr-n1"), Street: peopleToks("street-u1")}})
	put(&detect.Patient{ID: "pneighrel", Person: detect.Person{Address: peopleToks("addr-n2"), Street: peopleToks("street-u1")}})
	put(&detect.Patient{ID: "pcow", Employee: "u2", Labels: []string{detect.LabelEmployee}})
	put(&detect.Patient{ID: "pemp", Labels: []string{detect.LabelEmployee}})
	put(&detect.Patient{ID: "pcowrel", Employee: "u2"})
	put(&detect.Patient{ID: "pvip", Labels: []string{detect.LabelVIP}})
	put(&detect.Patient{ID: "pr", Labels: []string{detect.LabelRestricted}})
	put(&detect.Patient{ID: "pviprel", Labels: []string{detect.LabelVIP}})
	put(&detect.Patient{ID: "pvipold", Labels: []string{detect.LabelVIP}})
	put(&detect.Patient{ID: "pdead", Deceased: true})
	put(&detect.Patient{ID: "pdeadrel", Deceased: true})
	put(&detect.Patient{ID: "pstranger"})
	put(&detect.Patient{ID: "pold"})
	put(&detect.Patient{ID: "precent"})
	put(&detect.Patient{ID: "pcare"})
	put(&detect.Patient{ID: "pappt"})
	put(&detect.Patient{ID: "hp1"})
	put(&detect.Patient{ID: "hp2"})
	d.SetHoneytoken("hp1", true)
	d.SetHoneytoken("hp2", true)
	day := 24 * time.Hour
	d.SetRelationships("Encounter/e1", []detect.Relationship{
		{User: "u1", Patient: "pneighrel", Kind: detect.KindEncounter, Start: peopleNow.Add(-2 * time.Hour)},
		{User: "u1", Patient: "pcowrel", Kind: detect.KindEncounter, Start: peopleNow.Add(-2 * time.Hour)},
		{User: "u1", Patient: "pviprel", Kind: detect.KindEncounter, Start: peopleNow.Add(-2 * time.Hour)}, // still open
		{User: "u1", Patient: "pvipold", Kind: detect.KindEncounter, Start: peopleNow.Add(-40 * day), End: peopleNow.Add(-30 * day)},
		{User: "u1", Patient: "pdeadrel", Kind: detect.KindEncounter, Start: peopleNow.Add(-12 * day), End: peopleNow.Add(-10 * day)},
		{User: "u1", Patient: "pold", Kind: detect.KindEncounter, Start: peopleNow.Add(-31 * day), End: peopleNow.Add(-30 * day)},
		{User: "u1", Patient: "precent", Kind: detect.KindEncounter, Start: peopleNow.Add(-6 * day), End: peopleNow.Add(-5 * day)},
	})
	// Through the linked Practitioner, and an appointment days ahead.
	d.SetRelationships("CareTeam/c1", []detect.Relationship{{User: "Practitioner/pr1", Patient: "pcare", Kind: detect.KindCareTeam}})
	d.SetRelationships("Appointment/a1", []detect.Relationship{{User: "u1", Patient: "pappt", Kind: detect.KindAppointment, Start: peopleNow.Add(3 * day), End: peopleNow.Add(3*day + time.Hour)}})
	return d
}

var peopleRuleNames = []string{"honeytoken", "self-access", "family-access", "neighbour-access", "coworker-access", "vip-access", "deceased-access", "no-relationship"}

// peopleEngine runs the rules about people as DefaultRules makes them
// (sharing their lookups), and no others.
func peopleEngine(d *detect.Directory) *detect.Engine {
	rules := slices.DeleteFunc(detect.DefaultRules(), func(r detect.Rule) bool { return !slices.Contains(peopleRuleNames, r.Name()) })
	e := detect.NewEngine(d, rules, nil)
	e.Now = func() time.Time { return peopleNow }
	return e
}

// read is user's successful read of patient's Patient resource.
func peopleRead(user, patient string) detect.Event {
	return detect.Event{Stream: detect.StreamTrail, Seq: 7, Time: peopleNow, User: user, Roles: []string{"nurse"},
		Action: phivault.ActionRead, ResourceType: "Patient", ResourceID: patient, Patients: []string{patient}, Count: 1, OK: true, Outcome: "ok"}
}

// alertsOf observes evs and returns "rule key" of every alert.
func peopleAlerts(t *testing.T, d *detect.Directory, evs ...detect.Event) ([]string, []*detect.Alert) {
	t.Helper()
	e := peopleEngine(d)
	for i := range evs {
		e.Observe(&evs[i])
	}
	alerts := e.Drain()
	var got []string
	for _, a := range alerts {
		got = append(got, a.Rule+" "+a.Key)
	}
	slices.Sort(got)
	return got, alerts
}

func TestPeopleRules(t *testing.T) {
	today := "|" + peopleNow.Format(time.DateOnly)
	search := func(user string, patients ...string) detect.Event {
		ev := peopleRead(user, "")
		ev.Action, ev.ResourceType, ev.ResourceID, ev.Patients, ev.Params = phivault.ActionSearch, "Patient", "", patients, []string{"name"}
		return ev
	}
	with := func(ev detect.Event, fn func(*detect.Event)) detect.Event { fn(&ev); return ev }
	cases := []struct {
		name string
		ev   detect.Event
		want []string
	}{
		// self-access
		{"self: own linked record", peopleRead("u1", "pu1"), []string{"self-access u1|pu1"}},
		{"self: record naming the user as employee", peopleRead("u1", "pself2"), []string{"self-access u1|pself2"}},
		{"self: patient account reading own record", with(peopleRead("pat", "pfam"), func(ev *detect.Event) { ev.Roles = []string{"patient"} }), nil},
		{"self: patient account without roles", with(peopleRead("portal", "pvip"), func(ev *detect.Event) { ev.Roles = nil }), nil},
		{"self: patient account without roles, staff role in the event", peopleRead("portal", "pvip"), []string{"self-access portal|pvip", "vip-access portal|pvip"}},
		{"self: own record refused", with(peopleRead("u1", "pu1"), func(ev *detect.Event) { ev.OK, ev.Outcome = false, "EFORBIDDEN" }), nil},
		// family-access
		{"family: family name and address", peopleRead("u1", "pfam"), []string{"family-access u1|pfam", "no-relationship u1|pfam" + today}},
		{"family: address only", peopleRead("u1", "pflat"), []string{"family-access u1|pflat", "no-relationship u1|pflat" + today}},
		{"family: phone only", peopleRead("u1", "pphone"), []string{"family-access u1|pphone", "no-relationship u1|pphone" + today}},
		{"family: same family name, other address", peopleRead("u1", "pnamesake"), []string{"no-relationship u1|pnamesake" + today}},
		{"family: clerk (not clinical) with family", peopleRead("clerk", "pstranger"), nil},
		// neighbour-access
		{"neighbour: same street, no relationship", peopleRead("u1", "pneigh"), []string{"neighbour-access u1|pneigh", "no-relationship u1|pneigh" + today}},
		{"neighbour: same street, open encounter", peopleRead("u1", "pneighrel"), nil},
		{"neighbour: same street and address is family", peopleRead("u1", "pflat"), []string{"family-access u1|pflat", "no-relationship u1|pflat" + today}},
		// coworker-access
		{"coworker: employee record", peopleRead("u1", "pcow"), []string{"coworker-access u1|pcow", "no-relationship u1|pcow" + today}},
		{"coworker: EMP label only", peopleRead("u1", "pemp"), []string{"coworker-access u1|pemp", "no-relationship u1|pemp" + today}},
		{"coworker: employee with open encounter", peopleRead("u1", "pcowrel"), nil},
		{"coworker: the employee themself", peopleRead("u2", "pcow"), []string{"self-access u2|pcow"}},
		// vip-access
		{"vip: VIP without relationship", peopleRead("u1", "pvip"), []string{"no-relationship u1|pvip" + today, "vip-access u1|pvip"}},
		{"vip: restricted without relationship", peopleRead("u1", "pr"), []string{"no-relationship u1|pr" + today, "vip-access u1|pr"}},
		{"vip: VIP with open encounter", peopleRead("u1", "pviprel"), nil},
		{"vip: VIP whose encounter ended 30 days ago", peopleRead("u1", "pvipold"), []string{"no-relationship u1|pvipold" + today, "vip-access u1|pvipold"}},
		{"vip: read refused", with(peopleRead("u1", "pvip"), func(ev *detect.Event) { ev.OK = false }), nil},
		{"vip: backend client", with(peopleRead("lab-feed", "pvip"), func(ev *detect.Event) { ev.Client, ev.Roles = "lab-feed", nil }), nil},
		{"vip: operator token", with(peopleRead("demo", "pvip"), func(ev *detect.Event) { ev.Roles = []string{"bootstrap-admin"} }), nil},
		{"vip: unknown user of another system", with(peopleRead("ehr:9", "pvip"), func(ev *detect.Event) { ev.System = "ehr" }), []string{"vip-access ehr:9|pvip"}},
		// deceased-access
		{"deceased: no relationship", peopleRead("u1", "pdead"), []string{"deceased-access u1|pdead", "no-relationship u1|pdead" + today}},
		{"deceased: encounter ended 10 days before", peopleRead("u1", "pdeadrel"), []string{"no-relationship u1|pdeadrel" + today}},
		// no-relationship
		{"no-relationship: stranger", peopleRead("u1", "pstranger"), []string{"no-relationship u1|pstranger" + today}},
		{"no-relationship: relationship ended 30 days before", peopleRead("u1", "pold"), []string{"no-relationship u1|pold" + today}},
		{"no-relationship: relationship ended 5 days before", peopleRead("u1", "precent"), nil},
		{"no-relationship: care team through linked practitioner", peopleRead("u1", "pcare"), nil},
		{"no-relationship: appointment in 3 days", peopleRead("u1", "pappt"), nil},
		{"no-relationship: front desk", peopleRead("clerk", "pold"), nil},
		{"no-relationship: unknown user", peopleRead("ehr:9", "pstranger"), nil},
		{"no-relationship: write", with(peopleRead("u1", "pstranger"), func(ev *detect.Event) { ev.Action = phivault.ActionUpdate }), nil},
		{"no-relationship: search landing on one patient", search("u1", "pstranger"), []string{"no-relationship u1|pstranger" + today}},
		// searches listing several patients are lists, not looks
		{"search listing several", search("u1", "pfam", "pvip", "pstranger", "pu1"), nil},
		{"search landing on family", search("u1", "pfam"), []string{"family-access u1|pfam", "no-relationship u1|pfam" + today}},
		// other actions
		{"everything of family", with(peopleRead("u1", "pfam"), func(ev *detect.Event) { ev.Action = phivault.ActionEverything }), []string{"family-access u1|pfam", "no-relationship u1|pfam" + today}},
		{"print of VIP", with(peopleRead("u1", "pvip"), func(ev *detect.Event) { ev.Action = detect.ActionPrint }), []string{"no-relationship u1|pvip" + today, "vip-access u1|pvip"}},
		{"update of own record", with(peopleRead("u1", "pu1"), func(ev *detect.Event) { ev.Action = phivault.ActionUpdate }), []string{"self-access u1|pu1"}},
		{"sign-in", detect.Event{Time: peopleNow, User: "u1", Action: phivault.ActionLogin, OK: true}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, alerts := peopleAlerts(t, peopleDir(), c.ev)
			if !slices.Equal(got, c.want) {
				t.Fatalf("alerts = %q, want %q", got, c.want)
			}
			for _, a := range alerts {
				peopleCheckAlert(t, a)
			}
		})
	}
}

// checkPeopleAlert checks what every alert of these rules holds: one
// sentence, ids only, the event as evidence.
func peopleCheckAlert(t *testing.T, a *detect.Alert) {
	t.Helper()
	if !strings.HasSuffix(a.Why, ".") || strings.Count(a.Why, ".") != 1 || !strings.Contains(a.Why, a.Patients[0]) {
		t.Errorf("%s: Why = %q, want one sentence naming the patient", a.Rule, a.Why)
	}
	if strings.Contains(a.Why, "fam-") || strings.Contains(a.Why, "addr-") || strings.Contains(a.Why, "phone-") || strings.Contains(a.Why, "street-") {
		t.Errorf("%s: Why = %q holds a token value", a.Rule, a.Why)
	}
	if len(a.Evidence) != 1 || a.Evidence[0] != "trail/7" || a.Events != 1 {
		t.Errorf("%s: evidence %q (%d events), want [trail/7]", a.Rule, a.Evidence, a.Events)
	}
	if a.ID != detect.AlertID(a.Rule, a.Key) || a.State != detect.StateOpen || !a.First.Equal(peopleNow) {
		t.Errorf("%s: alert %+v", a.Rule, a)
	}
}

func TestPeopleRulesSentences(t *testing.T) {
	cases := []struct {
		ev   detect.Event
		rule string
		want string
	}{
		{peopleRead("u1", "pfam"), "family-access", "User u1 opened the record of patient pfam, who shares a family name and an address with them."},
		{peopleRead("u1", "pphone"), "family-access", "User u1 opened the record of patient pphone, who shares a phone number with them."},
		{peopleRead("u1", "pu1"), "self-access", "User u1 opened the record of patient pu1, which is their own."},
		{peopleRead("u1", "pneigh"), "neighbour-access", "User u1 opened the record of patient pneigh, who lives on their street, with no care relationship within a day."},
		{peopleRead("u1", "pcow"), "coworker-access", "User u1 opened the record of patient pcow, who is employee u2, with no care relationship within a day."},
		{peopleRead("u1", "pr"), "vip-access", "User u1 opened the record of patient pr, who is labelled restricted, with no care relationship within a day."},
		{peopleRead("u1", "pdead"), "deceased-access", "User u1 opened the record of patient pdead, who is deceased, with no care relationship within 30 days."},
		{peopleRead("u1", "pstranger"), "no-relationship", "User u1 opened the record of patient pstranger with no care relationship, encounter, appointment or order within 7 days."},
	}
	for _, c := range cases {
		_, alerts := peopleAlerts(t, peopleDir(), c.ev)
		i := slices.IndexFunc(alerts, func(a *detect.Alert) bool { return a.Rule == c.rule })
		if i < 0 {
			t.Errorf("%s: no alert", c.rule)
			continue
		}
		if alerts[i].Why != c.want {
			t.Errorf("%s: Why = %q, want %q", c.rule, alerts[i].Why, c.want)
		}
	}
}

func TestPeopleRulesSeverity(t *testing.T) {
	want := map[string]struct {
		sev   detect.Severity
		score int
	}{
		"honeytoken": {detect.SeverityCritical, 100}, "self-access": {detect.SeverityMedium, 50},
		"family-access": {detect.SeverityHigh, 80}, "neighbour-access": {detect.SeverityMedium, 60},
		"coworker-access": {detect.SeverityMedium, 60}, "vip-access": {detect.SeverityHigh, 80},
		"deceased-access": {detect.SeverityMedium, 50}, "no-relationship": {detect.SeverityLow, 30},
	}
	ev := peopleRead("u1", "")
	ev.Action, ev.ResourceType, ev.Patients = phivault.ActionBundle, "", []string{"hp1", "pu1", "pfam", "pneigh", "pcow", "pvip", "pdead"}
	evs := []detect.Event{ev, peopleRead("u1", "pstranger")}
	_, alerts := peopleAlerts(t, peopleDir(), evs...)
	seen := map[string]bool{}
	for _, a := range alerts {
		w, ok := want[a.Rule]
		if !ok {
			continue
		}
		seen[a.Rule] = true
		if a.Severity != w.sev || a.Score != w.score {
			t.Errorf("%s: severity %s score %d, want %s %d", a.Rule, a.Severity, a.Score, w.sev, w.score)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("rules that fired: %v, want all of %v", seen, want)
	}
}

func TestHoneytoken(t *testing.T) {
	many := make([]string, 0, 52)
	for i := range 50 {
		many = append(many, fmt.Sprintf("pp%d", i))
	}
	many = slices.Insert(many, 17, "hp1")
	many = append(many, "hp2")
	with := func(ev detect.Event, fn func(*detect.Event)) detect.Event { fn(&ev); return ev }
	cases := []struct {
		name string
		ev   detect.Event
		want []string
	}{
		{"read by a nurse", peopleRead("u1", "hp1"), []string{"honeytoken u1|hp1"}},
		{"read by the operator", with(peopleRead("admin", "hp1"), func(ev *detect.Event) { ev.Roles = []string{"bootstrap-admin"} }), []string{"honeytoken admin|hp1"}},
		{"refused read", with(peopleRead("u1", "hp1"), func(ev *detect.Event) { ev.OK, ev.Outcome = false, "EFORBIDDEN" }), []string{"honeytoken u1|hp1"}},
		{"refused read naming only the target", with(peopleRead("u1", "hp1"), func(ev *detect.Event) { ev.OK, ev.Patients = false, nil }), []string{"honeytoken u1|hp1"}},
		{"unauthenticated probe", with(peopleRead("", "hp2"), func(ev *detect.Event) { ev.OK, ev.Roles = false, nil }), []string{"honeytoken |hp2"}},
		{"search hit among many", with(peopleRead("u1", ""), func(ev *detect.Event) {
			ev.Action, ev.ResourceID, ev.Patients = phivault.ActionSearch, "", many
		}), []string{"honeytoken u1|hp1", "honeytoken u1|hp2"}},
		{"bundle", with(peopleRead("u1", ""), func(ev *detect.Event) {
			ev.Action, ev.ResourceType, ev.ResourceID, ev.Patients = phivault.ActionBundle, "", "", many
		}), []string{"honeytoken u1|hp1", "honeytoken u1|hp2"}},
		{"export by a patient", with(peopleRead("pat", "hp2"), func(ev *detect.Event) { ev.Action, ev.Roles = phivault.ActionExport, []string{"patient"} }), []string{"honeytoken pat|hp2"}},
		{"history", with(peopleRead("u2", "hp1"), func(ev *detect.Event) { ev.Action = phivault.ActionHistory }), []string{"honeytoken u2|hp1"}},
		{"delete", with(peopleRead("u2", "hp1"), func(ev *detect.Event) { ev.Action = phivault.ActionDelete }), []string{"honeytoken u2|hp1"}},
		{"planting by the operator", with(peopleRead("demo", "hp1"), func(ev *detect.Event) {
			ev.Action, ev.Roles, ev.Purpose = phivault.ActionCreate, []string{"bootstrap-admin"}, detect.DefaultPlantPurpose
		}), nil},
		{"a write by a person claiming the plant purpose", with(peopleRead("u2", "hp1"), func(ev *detect.Event) {
			ev.Action, ev.Purpose = phivault.ActionCreate, detect.DefaultPlantPurpose
		}), []string{"honeytoken u2|hp1"}},
		{"a read by the operator with the plant purpose", with(peopleRead("demo", "hp1"), func(ev *detect.Event) {
			ev.Roles, ev.Purpose = []string{"bootstrap-admin"}, detect.DefaultPlantPurpose
		}), []string{"honeytoken demo|hp1"}},
		{"search missing the decoys", with(peopleRead("u1", ""), func(ev *detect.Event) {
			ev.Action, ev.ResourceID, ev.Patients = phivault.ActionSearch, "", many[:10]
		}), nil},
		// The security API's own entries name the patients an alert or an
		// incident is about; reading or acting on those is no look at the
		// record.
		{"an officer lists alerts about a decoy", with(peopleRead("po", ""), func(ev *detect.Event) {
			ev.Action, ev.ResourceType, ev.ResourceID, ev.Patients = phivault.ActionSearch, detect.TargetAlert, "", []string{"hp1"}
		}), nil},
		{"the responder changes an incident about a decoy", with(peopleRead("incident-responder", ""), func(ev *detect.Event) {
			ev.Action, ev.ResourceType, ev.ResourceID, ev.Patients = phivault.ActionIncident, detect.TargetIncident, "inc-1", []string{"hp1"}
		}), nil},
		// Reads of the trail name the patients they concern: a privacy
		// officer investigating a decoy's touch is no touch herself.
		{"a privacy officer reads a decoy's access report", with(peopleRead("po", ""), func(ev *detect.Event) {
			ev.Action, ev.ResourceType, ev.ResourceID, ev.Patients = phivault.ActionExport, auditlog.TargetAccessReport, "hp1", []string{"hp1"}
		}), nil},
		{"a privacy officer's lookup finds a decoy", with(peopleRead("po", ""), func(ev *detect.Event) {
			ev.Action, ev.ResourceType, ev.ResourceID, ev.Patients = phivault.ActionSearch, auditlog.TargetPatientLookup, "", []string{"pp1", "hp1"}
		}), nil},
		{"an officer searches the trail for a decoy", with(peopleRead("po", ""), func(ev *detect.Event) {
			ev.Action, ev.ResourceType, ev.ResourceID, ev.Patients = phivault.ActionExport, auditlog.TargetAuditEvent, "", []string{"hp1"}
		}), nil},
		{"a FHIR search of Patient that hits a decoy", with(peopleRead("po", ""), func(ev *detect.Event) {
			ev.Action, ev.ResourceType, ev.ResourceID, ev.Patients = phivault.ActionSearch, "Patient", "", []string{"pp1", "hp1"}
		}), []string{"honeytoken po|hp1"}},
		{"another system's log says Alert", with(peopleRead("ehr:u1", "hp1"), func(ev *detect.Event) {
			ev.Stream, ev.ResourceType = detect.StreamIngest, detect.TargetAlert
		}), []string{"honeytoken ehr:u1|hp1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, alerts := peopleAlerts(t, peopleDir(), c.ev)
			var got []string
			for _, a := range alerts {
				if a.Rule == detect.RuleHoneytoken {
					got = append(got, a.Rule+" "+a.Key)
					if a.Severity != detect.SeverityCritical || a.Score != 100 || len(a.Patients) != 1 || !strings.Contains(a.Why, "decoy") {
						t.Errorf("alert %+v", a)
					}
				}
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("alerts = %q, want %q", got, c.want)
			}
		})
	}
}

// TestHoneytokenAlertMerges checks that touching a decoy twice is one
// alert with two events, and that a decoy no longer marked is quiet.
func TestHoneytokenAlertMerges(t *testing.T) {
	d := peopleDir()
	e := peopleEngine(d)
	a, b := peopleRead("u1", "hp1"), peopleRead("u1", "hp1")
	b.Seq = 8
	e.Observe(&a)
	e.Observe(&b)
	alerts := slices.DeleteFunc(e.Drain(), func(a *detect.Alert) bool { return a.Rule != detect.RuleHoneytoken })
	if len(alerts) != 1 || alerts[0].Events != 2 || !slices.Equal(alerts[0].Evidence, []string{"trail/7", "trail/8"}) {
		t.Fatalf("alerts = %+v, want one of two events", alerts)
	}
	d.SetHoneytoken("hp1", false)
	e.Observe(&a)
	if alerts := slices.DeleteFunc(e.Drain(), func(a *detect.Alert) bool { return a.Rule != detect.RuleHoneytoken }); len(alerts) != 0 {
		t.Fatalf("alerts after unmarking = %+v", alerts)
	}
}

func TestPeopleRulesInDefaults(t *testing.T) {
	var names []string
	for _, r := range detect.DefaultRules() {
		names = append(names, r.Name())
	}
	for _, n := range peopleRuleNames {
		if !slices.Contains(names, n) {
			t.Errorf("DefaultRules lacks %s", n)
		}
	}
}

// TestPeopleRulesStandalone runs each rule made on its own, as a caller
// tuning one would, over the events of TestPeopleRules' positives.
func TestPeopleRulesStandalone(t *testing.T) {
	rules := []detect.Rule{
		detect.NewHoneytoken(), detect.NewSelfAccess(), detect.NewFamilyAccess(), detect.NewNeighbourAccess(),
		detect.NewCoworkerAccess(), detect.NewVIPAccess(), detect.NewDeceasedAccess(), detect.NewNoRelationship(),
	}
	for _, p := range []string{"hp1", "pu1", "pfam", "pneigh", "pcow", "pvip", "pdead", "pstranger", "pviprel"} {
		ev := peopleRead("u1", p)
		got, _ := peopleAlerts(t, peopleDir(), ev)
		e := detect.NewEngine(peopleDir(), rules, nil)
		e.Observe(&ev)
		var alone []string
		for _, a := range e.Drain() {
			alone = append(alone, a.Rule+" "+a.Key)
		}
		slices.Sort(alone)
		if !slices.Equal(alone, got) {
			t.Errorf("%s: rules on their own found %q, together %q", p, alone, got)
		}
	}
}

// TestPeopleRulesReusedEvent checks that the rules see each event afresh
// when a caller reuses one Event, and the directory changes in between.
func TestPeopleRulesReusedEvent(t *testing.T) {
	d := peopleDir()
	e := peopleEngine(d)
	ev := peopleRead("u1", "precent")
	e.Observe(&ev)
	ev.Seq, ev.Patients, ev.ResourceID = 8, []string{"pvip"}, "pvip"
	e.Observe(&ev)
	d.PutPatient(&detect.Patient{ID: "precent", Deceased: true})
	d.PutUser(&detect.User{ID: "u1", Roles: []string{"nurse"}, Patient: "precent"})
	ev.Seq, ev.Patients, ev.ResourceID = 9, []string{"precent"}, "precent"
	e.Observe(&ev)
	var got []string
	for _, a := range e.Drain() {
		got = append(got, a.Rule+" "+a.Key)
	}
	slices.Sort(got)
	today := "|" + peopleNow.Format(time.DateOnly)
	want := []string{"no-relationship u1|pvip" + today, "self-access u1|precent", "vip-access u1|pvip"}
	if !slices.Equal(got, want) {
		t.Fatalf("alerts = %q, want %q", got, want)
	}
}

// TestPeopleRulesSettings checks that the settings fields are read.
func TestPeopleRulesSettings(t *testing.T) {
	d := peopleDir()
	nr := detect.NewNoRelationship()
	nr.Slack = 31 * 24 * time.Hour
	vip := detect.NewVIPAccess()
	vip.SearchHits = 5
	fam := detect.NewFamilyAccess()
	fam.Severity, fam.Score = detect.SeverityCritical, 99
	e := detect.NewEngine(d, []detect.Rule{nr, vip, fam}, nil)
	evs := []detect.Event{peopleRead("u1", "pold"), peopleRead("u1", "pvip"), peopleRead("u1", "pfam")}
	evs[1].Action, evs[1].Patients = phivault.ActionSearch, []string{"pvip", "pstranger", "pold"}
	for i := range evs {
		e.Observe(&evs[i])
	}
	var got []string
	for _, a := range e.Drain() {
		got = append(got, fmt.Sprintf("%s %s %s %d", a.Rule, a.Key, a.Severity, a.Score))
	}
	slices.Sort(got)
	today := peopleNow.Format(time.DateOnly)
	want := []string{
		"family-access u1|pfam critical 99",
		"no-relationship u1|pfam|" + today + " low 30",
		"vip-access u1|pvip high 80",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("alerts = %q, want %q", got, want)
	}
}

// TestNoRelationshipPerDay checks the key: one alert a user, patient and
// day.
func TestNoRelationshipPerDay(t *testing.T) {
	a, b, c := peopleRead("u1", "pstranger"), peopleRead("u1", "pstranger"), peopleRead("u1", "pstranger")
	b.Time = peopleNow.Add(3 * time.Hour)
	c.Time = peopleNow.Add(24 * time.Hour)
	got, _ := peopleAlerts(t, peopleDir(), a, b, c)
	want := []string{"no-relationship u1|pstranger|2026-12-06", "no-relationship u1|pstranger|2026-12-07"}
	if !slices.Equal(got, want) {
		t.Fatalf("alerts = %q, want %q", got, want)
	}
}

// benchHospital is a directory of 1,000 users and 10,000 patients with
// about 30 care relationships a user, and 1,000 events of users opening
// patients they are related to: the path where nothing is found.
func peopleBenchHospital() (*detect.Directory, []detect.Event) {
	r := rand.New(rand.NewPCG(1, 2))
	d := detect.NewDirectory()
	t16 := func() phivault.Token {
		var t phivault.Token
		for i := range t {
			t[i] = byte(r.IntN(256))
		}
		return t
	}
	person := func() detect.Person {
		return detect.Person{Family: []phivault.Token{t16()}, Address: []phivault.Token{t16()}, Street: []phivault.Token{t16()}, Phone: []phivault.Token{t16(), t16()}}
	}
	roles := [][]string{{"nurse"}, {"physician"}, {"front-desk"}, {"billing"}}
	for i := range 1000 {
		d.PutUser(&detect.User{ID: fmt.Sprintf("u%d", i), Roles: roles[i%len(roles)], Practitioner: fmt.Sprintf("pr%d", i), Person: person()})
	}
	for i := range 10000 {
		p := &detect.Patient{ID: fmt.Sprintf("p%d", i), Person: person()}
		switch i % 50 {
		case 1:
			p.Labels = []string{detect.LabelVIP}
		case 2:
			p.Deceased = true
		case 3:
			p.Employee = fmt.Sprintf("u%d", i%1000)
		}
		d.PutPatient(p)
		if i%500 == 0 {
			d.SetHoneytoken(p.ID, true)
		}
	}
	var evs []detect.Event
	for u := range 1000 {
		var rels []detect.Relationship
		for range 30 {
			p := fmt.Sprintf("p%d", r.IntN(10000))
			if d.Honeytoken(p) {
				continue
			}
			start := peopleNow.Add(-time.Duration(r.IntN(30*24)) * time.Hour)
			user := fmt.Sprintf("u%d", u)
			if u%2 == 0 {
				user = fmt.Sprintf("Practitioner/pr%d", u)
			}
			rels = append(rels, detect.Relationship{User: user, Patient: p, Kind: detect.KindEncounter, Start: start, End: start.Add(4 * time.Hour)})
			if len(evs) < 1000 && r.IntN(30) == 0 {
				ev := peopleRead(fmt.Sprintf("u%d", u), p)
				ev.Time = start.Add(time.Hour)
				ev.Roles = roles[u%len(roles)]
				evs = append(evs, ev)
			}
		}
		d.SetRelationships(fmt.Sprintf("Encounter/u%d", u), rels)
	}
	return d, evs
}

func BenchmarkPeopleRules(b *testing.B) {
	d, evs := peopleBenchHospital()
	e := peopleEngine(d)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		e.Observe(&evs[i%len(evs)])
		i++
	}
	if n := len(e.Drain()); n != 0 {
		b.Fatalf("%d alerts on the quiet path", n)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i), "ns/event")
}

// TestPeopleRulesQuietPathAllocs holds the rules to allocating nothing
// when they find nothing.
func TestPeopleRulesQuietPathAllocs(t *testing.T) {
	d, evs := peopleBenchHospital()
	e := peopleEngine(d)
	if len(evs) < 100 {
		t.Fatalf("only %d events", len(evs))
	}
	i := 0
	allocs := testing.AllocsPerRun(len(evs), func() {
		e.Observe(&evs[i%len(evs)])
		i++
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations an event on the quiet path, want 0", allocs)
	}
	if alerts := e.Drain(); len(alerts) != 0 {
		t.Errorf("%d alerts on the quiet path: %+v", len(alerts), alerts[0])
	}
}
