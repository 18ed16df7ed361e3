package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/access"
	"github.com/phivault/phivault/admin"
)

// rowOf returns the table row of the page whose id is id, or "".
func rowOf(body, id string) string {
	_, after, ok := strings.Cut(body, `<tr id="`+id+`">`)
	if !ok {
		return ""
	}
	row, _, _ := strings.Cut(after, "</tr>")
	return row
}

// accountStatus returns the status of the account named username.
func accountStatus(t *testing.T, a *auditApp, username string) string {
	t.Helper()
	acc, err := a.accounts.AccountByUsername(context.Background(), username)
	if err != nil {
		t.Fatal(err)
	}
	return acc.Status
}

// TestConsole_people has a security admin list people with their
// training, suspend and activate a nurse with a reason code (free text is
// refused by the admin API, and the form comes back as typed), and see a
// change to their own account wait for a second admin; other roles are
// refused.
func TestConsole_people(t *testing.T) {
	a := mustAuditApp(t)
	srv := consoleServer(t, a)
	people := consolePeople(t, a)
	for _, u := range []admin.UserCreate{
		{Username: "soon-trained", Roles: []string{"billing"}, TrainingValidUntil: time.Now().UTC().AddDate(0, 0, 10).Format(time.DateOnly)},
		{Username: "lapsed-trained", Roles: []string{"billing"}, TrainingValidUntil: time.Now().UTC().AddDate(0, 0, -3).Format(time.DateOnly)},
	} {
		if _, err := a.admin.NewAccount(context.Background(), &u); err != nil {
			t.Fatal(err)
		}
	}
	nurseID, adminID := accountID(t, a, "nurse"), accountID(t, a, "secadmin")

	nurse := newConsoleBrowser(t, srv)
	nurse.signIn("/console/reports", people["nurse"])
	if pg := nurse.get("/console/reports"); pg.status != http.StatusOK {
		t.Fatalf("the nurse's reports = %d", pg.status)
	}
	sec := newConsoleBrowser(t, srv)
	sec.signIn("/console/people", people["secadmin"])
	pg := sec.get("/console/people")
	if pg.status != http.StatusOK || !strings.Contains(pg.body, "<h1>People</h1>") || !strings.Contains(pg.body, `href="/console/people" aria-current="page">People<`) {
		t.Fatalf("people = %d %s", pg.status, pg.body)
	}
	if row := rowOf(pg.body, "user-"+accountID(t, a, "soon-trained")); !strings.Contains(row, "expiring: 10 days left") || !strings.Contains(row, `class="training-soon"`) {
		t.Errorf("training in 10 days is not marked expiring:\n%s", row)
	}
	if row := rowOf(pg.body, "user-"+accountID(t, a, "lapsed-trained")); !strings.Contains(row, ">expired<") {
		t.Errorf("lapsed training is not marked expired:\n%s", row)
	}
	row := rowOf(pg.body, "user-"+nurseID)
	if !strings.Contains(row, "nurse") || strings.Contains(row, "expir") || !strings.Contains(row, ">Suspend nurse<") ||
		!strings.Contains(row, `list="reasons-suspend"`) {
		t.Errorf("the nurse's row:\n%s", row)
	}
	if !strings.Contains(pg.body, `<datalist id="reasons-suspend"><option value="left-organisation">`) ||
		!strings.Contains(pg.body, `<option value="returned">`) {
		t.Errorf("the page offers no reason codes:\n%s", pg.body)
	}
	if !strings.Contains(pg.body, "<code class=\"wrap\">phivault-console</code>") {
		t.Errorf("the console's client is not listed:\n%s", pg.body)
	}

	// Others may not open the page, nor post its forms.
	privacy := newConsoleBrowser(t, srv)
	privacy.signIn("/console/alerts", people["privacy"])
	for name, b := range map[string]*consoleBrowser{"privacy officer": privacy, "nurse": nurse} {
		for _, path := range []string{"/console/people", "/console/keys"} {
			got := b.get(path)
			if got.status != http.StatusForbidden || !strings.Contains(got.body, "Not allowed") ||
				strings.Contains(got.body, "soon-trained") || strings.Contains(got.body, nurseID) || strings.Contains(got.body, `href="/console/people"`) {
				t.Errorf("the %s's %s = %d %s", name, path, got.status, got.body)
			}
		}
		home := b.get("/console/reports")
		got := b.do(http.MethodPost, "/console/people/users/"+adminID+"/status", url.Values{"csrf": {b.csrf(home)}, "status": {"suspended"}, "reason": {"x"}})
		if got.status != http.StatusForbidden {
			t.Errorf("the %s's suspension = %d", name, got.status)
		}
		got = b.do(http.MethodPost, "/console/keys/seal", url.Values{"csrf": {b.csrf(home)}, "confirm": {"SEAL"}})
		if got.status != http.StatusForbidden {
			t.Errorf("the %s's seal = %d", name, got.status)
		}
	}
	if st := accountStatus(t, a, "secadmin"); st != phivault.AccountActive {
		t.Fatalf("the admin's status = %q after refused posts", st)
	}
	if status, _ := a.do(t, "GET", "/fhir/Patient", ""); status != http.StatusOK {
		t.Fatalf("a search after refused seals = %d", status)
	}
	// The console's gate stopped them: the admin API was not even asked.
	if n := len(want(a.trail(t), func(e *phivault.AuditEntry) bool {
		return e.Action == phivault.ActionSeal || e.Action == phivault.ActionAccountChange && e.Outcome == phivault.EFORBIDDEN
	})); n != 0 {
		t.Errorf("%d seal or account entries after posts the console should have stopped", n)
	}

	// Without the session's CSRF token, or without a reason, nothing changes.
	suspend := "/console/people/users/" + nurseID + "/status"
	if got := sec.do(http.MethodPost, suspend, url.Values{"status": {"suspended"}, "reason": {"left the ward"}}); got.status != http.StatusForbidden {
		t.Errorf("suspension without a CSRF token = %d", got.status)
	}
	csrf := sec.csrf(pg)
	got := sec.do(http.MethodPost, suspend, url.Values{"csrf": {csrf}, "status": {"suspended"}, "reason": {"  "}})
	if got.status != http.StatusBadRequest || !strings.Contains(got.body, "Give a reason") || !strings.Contains(got.body, "<h1>People</h1>") {
		t.Errorf("suspension without a reason = %d %s", got.status, got.body)
	}
	if got = sec.do(http.MethodPost, suspend, url.Values{"csrf": {csrf}, "status": {"gone"}, "reason": {"x"}}); got.status != http.StatusBadRequest {
		t.Errorf("an unknown status = %d", got.status)
	}
	// Free text is no reason code: the admin API refuses it, and the form
	// comes back with its message and what was typed.
	before := len(a.trail(t))
	freeText := "badge lost by Jane Doe"
	got = sec.do(http.MethodPost, suspend, url.Values{"csrf": {csrf}, "status": {"suspended"}, "reason": {freeText}})
	if got.status != http.StatusBadRequest || !strings.Contains(got.body, "reason must be a short code: 1 to 64 lowercase letters, digits and hyphens") ||
		!strings.Contains(rowOf(got.body, "user-"+nurseID), `value="`+freeText+`"`) {
		t.Errorf("a free-text reason = %d %s", got.status, got.body)
	}
	refused := a.trail(t)[before:]
	if len(want(refused, func(e *phivault.AuditEntry) bool {
		return e.Action == phivault.ActionAccountChange && e.TargetID == nurseID && e.Outcome == phivault.EINVALID
	})) != 1 {
		t.Errorf("no audit entry of the refused suspension in %+v", refused)
	}
	if b, _ := json.Marshal(refused); strings.Contains(string(b), "Jane") {
		t.Errorf("the free-text reason reached the trail: %s", b)
	}
	if st := accountStatus(t, a, "nurse"); st != phivault.AccountActive {
		t.Fatalf("the nurse's status = %q after refused posts", st)
	}
	if pg := nurse.get("/console/reports"); pg.status != http.StatusOK {
		t.Fatalf("the nurse's session after refused posts = %d", pg.status)
	}

	// Suspending ends the nurse's sessions, the console's too; the
	// change's entry names the reason code.
	before = len(a.trail(t))
	got = sec.do(http.MethodPost, suspend, url.Values{"csrf": {csrf}, "status": {"suspended"}, "reason": {" account-compromised "}})
	if got.status != http.StatusSeeOther || got.location != "/console/people?done=suspended" {
		t.Fatalf("suspension = %d %q %s", got.status, got.location, got.body)
	}
	if st := accountStatus(t, a, "nurse"); st != phivault.AccountSuspended {
		t.Fatalf("the nurse's status = %q, want suspended", st)
	}
	entries := a.trail(t)[before:]
	if len(want(entries, func(e *phivault.AuditEntry) bool {
		return e.Action == phivault.ActionAccountChange && e.TargetID == nurseID && e.Actor == adminID && e.Outcome == "ok" &&
			e.Decision == "status suspended (reason account-compromised)"
	})) != 1 {
		t.Errorf("no audit entry of the suspension by the admin, naming its reason, in %+v", entries)
	}
	if pg := nurse.get("/console/reports"); pg.status != http.StatusSeeOther || !strings.HasPrefix(pg.location, "/console/signin?") {
		t.Errorf("the suspended nurse's session = %d %q", pg.status, pg.location)
	}
	pg = sec.get("/console/people?done=suspended")
	if row := rowOf(pg.body, "user-"+nurseID); !strings.Contains(row, "state-suspended") || !strings.Contains(row, ">Activate nurse<") ||
		!strings.Contains(row, `list="reasons-activate"`) || !strings.Contains(pg.body, "The status was set to suspended") {
		t.Errorf("after suspension, the nurse's row:\n%s", row)
	}
	got = sec.do(http.MethodPost, suspend, url.Values{"csrf": {csrf}, "status": {"active"}, "reason": {"returned"}})
	if got.status != http.StatusSeeOther || got.location != "/console/people?done=active" {
		t.Fatalf("activation = %d %q %s", got.status, got.location, got.body)
	}
	if st := accountStatus(t, a, "nurse"); st != phivault.AccountActive {
		t.Fatalf("the nurse's status = %q, want active", st)
	}
	if len(want(a.trail(t), func(e *phivault.AuditEntry) bool {
		return e.TargetID == nurseID && e.Outcome == "ok" && e.Decision == "status active (reason returned)"
	})) != 1 {
		t.Errorf("no audit entry of the activation naming its reason")
	}

	// A change to one's own account waits for a second admin: listed,
	// not approvable by its asker, withdrawn.
	got = sec.do(http.MethodPost, "/console/people/users/"+adminID+"/status", url.Values{"csrf": {csrf}, "status": {"suspended"}, "reason": {"leave-of-absence"}})
	if got.status != http.StatusSeeOther || got.location != "/console/people?done=awaits" {
		t.Fatalf("own suspension = %d %q %s", got.status, got.location, got.body)
	}
	if st := accountStatus(t, a, "secadmin"); st != phivault.AccountActive {
		t.Fatalf("the admin's own suspension was applied at once: %q", st)
	}
	pg = sec.get("/console/people?done=awaits")
	approve := changeForm.FindStringSubmatch(pg.body)
	if approve == nil || !strings.Contains(pg.body, "awaits a second security admin") || !strings.Contains(pg.body, "update · status suspended · reason leave-of-absence") {
		t.Fatalf("the pending change is not listed:\n%s", pg.body)
	}
	got = sec.do(http.MethodPost, "/console/people/changes/"+approve[1]+"/approve", url.Values{"csrf": {csrf}})
	if got.status != http.StatusForbidden || !strings.Contains(got.body, "another security admin") {
		t.Errorf("approving one's own change = %d %s", got.status, got.body)
	}
	got = sec.do(http.MethodPost, "/console/people/changes/"+approve[1]+"/reject", url.Values{"csrf": {csrf}})
	if got.status != http.StatusSeeOther || got.location != "/console/people?done=rejected" {
		t.Fatalf("withdrawing = %d %q %s", got.status, got.location, got.body)
	}
	if pg = sec.get("/console/people"); !strings.Contains(pg.body, "No change awaits a second admin.") {
		t.Errorf("the withdrawn change is still listed")
	}
	if st := accountStatus(t, a, "secadmin"); st != phivault.AccountActive {
		t.Fatalf("the admin's status = %q after the withdrawal", st)
	}
}

var changeForm = regexp.MustCompile(`action="/console/people/changes/([0-9a-f]+)/approve"`)

// TestConsole_keys has a security admin read the key status and shred a
// patient, refused first with a wrong typed confirmation.
func TestConsole_keys(t *testing.T) {
	a := mustAuditApp(t)
	srv := consoleServer(t, a)
	people := consolePeople(t, a)
	patient := a.create(t, "Patient", `{"resourceType":"Patient","name":[{"family":"Shreddable"}]}`)

	sec := newConsoleBrowser(t, srv)
	sec.signIn("/console/keys", people["secadmin"])
	pg := sec.get("/console/keys")
	if pg.status != http.StatusOK || !strings.Contains(pg.body, "<h1>Keys and vault</h1>") || !strings.Contains(pg.body, "state-unsealed") {
		t.Fatalf("keys = %d %s", pg.status, pg.body)
	}
	status, body := a.do(t, "GET", "/fhir/admin/keys/status", "")
	var st struct{ Current string }
	if status != http.StatusOK || json.Unmarshal(body, &st) != nil || st.Current == "" {
		t.Fatalf("key status = %d %s", status, body)
	}
	if !strings.Contains(pg.body, "<code class=\"wrap\">"+st.Current+"</code>, made 0 days ago") {
		t.Errorf("the current key version %s is not shown:\n%s", st.Current, pg.body)
	}
	csrf := sec.csrf(pg)

	// A key version is marked compromised only with its id typed; a
	// rotation needs no confirmation.
	got := sec.do(http.MethodPost, "/console/keys/compromised", url.Values{"csrf": {csrf}, "target": {st.Current}, "confirm": {"yes"}})
	if got.status != http.StatusBadRequest || !strings.Contains(got.body, "type the key version id exactly") {
		t.Errorf("compromise confirmed with \"yes\" = %d %s", got.status, got.body)
	}
	got = sec.do(http.MethodPost, "/console/keys/rotate", url.Values{"csrf": {csrf}})
	if got.status != http.StatusSeeOther || got.location != "/console/keys?done=rotate" {
		t.Fatalf("rotate = %d %q %s", got.status, got.location, got.body)
	}
	pg = sec.get("/console/keys?done=rotate")
	if !strings.Contains(pg.body, "is current; stored keys are being rewrapped") || strings.Contains(pg.body, "<code class=\"wrap\">"+st.Current+"</code>, made") {
		t.Errorf("after a rotation, %s is still current:\n%s", st.Current, pg.body)
	}

	reads := func() int {
		t.Helper()
		status, _ := a.do(t, "GET", "/fhir/Patient/"+patient, "")
		return status
	}
	shreds := func() int {
		return len(want(a.trail(t), func(e *phivault.AuditEntry) bool {
			return e.Action == phivault.ActionShred && e.TargetID == patient
		}))
	}
	for _, confirm := range []string{"", patient + "x", strings.ToUpper(patient), " " + patient} {
		got := sec.do(http.MethodPost, "/console/keys/shred", url.Values{"csrf": {csrf}, "target": {patient}, "confirm": {confirm}})
		if got.status != http.StatusBadRequest || !strings.Contains(got.body, "type the patient id exactly") || !strings.Contains(got.body, `value="`+patient+`"`) {
			t.Errorf("shred confirmed with %q = %d %s", confirm, got.status, got.body)
		}
	}
	if got := sec.do(http.MethodPost, "/console/keys/shred", url.Values{"target": {patient}, "confirm": {patient}}); got.status != http.StatusForbidden {
		t.Errorf("shred without a CSRF token = %d", got.status)
	}
	if got := sec.do(http.MethodPost, "/console/keys/seal", url.Values{"csrf": {csrf}, "confirm": {"seal"}}); got.status != http.StatusBadRequest || !strings.Contains(got.body, "type the word SEAL") {
		t.Errorf("seal confirmed with \"seal\" = %d %s", got.status, got.body)
	}
	if s := reads(); s != http.StatusOK {
		t.Fatalf("the patient reads %d after refused shreds", s)
	}
	if n := shreds(); n != 0 {
		t.Fatalf("%d shred entries after refused shreds", n)
	}

	got = sec.do(http.MethodPost, "/console/keys/shred", url.Values{"csrf": {csrf}, "target": {patient}, "confirm": {patient}})
	if got.status != http.StatusSeeOther || got.location != "/console/keys?done=shred" {
		t.Fatalf("shred = %d %q %s", got.status, got.location, got.body)
	}
	if s := reads(); s == http.StatusOK {
		t.Errorf("the shredded patient still reads")
	}
	if n := shreds(); n != 1 {
		t.Errorf("%d shred entries, want 1", n)
	}
	if pg = sec.get("/console/keys?done=shred"); !strings.Contains(pg.body, "was crypto-shredded") {
		t.Errorf("no notice of the shred:\n%s", pg.body)
	}

	// Sealed, the vault serves no record, and the page says why it
	// shows no key status.
	got = sec.do(http.MethodPost, "/console/keys/seal", url.Values{"csrf": {csrf}, "confirm": {"SEAL"}})
	if got.status != http.StatusSeeOther || got.location != "/console/keys?done=seal" {
		t.Fatalf("seal = %d %q %s", got.status, got.location, got.body)
	}
	if status, _ := a.do(t, "GET", "/fhir/Patient", ""); status != http.StatusServiceUnavailable {
		t.Errorf("a search in the sealed vault = %d", status)
	}
	pg = sec.get("/console/keys?done=seal")
	if pg.status != http.StatusOK || !strings.Contains(pg.body, "key status unavailable") || !strings.Contains(pg.body, "The vault is sealed") {
		t.Errorf("keys while sealed = %d %s", pg.status, pg.body)
	}
}

// TestConsole_keysSecondAdmin: on a server started with
// -approve-key-actions, a shred asked for on the Keys page waits: the
// patient still reads, the page lists the change, the admin who asked
// cannot approve it, and a second admin's approval on the same page
// shreds the patient in the second admin's name. A compromise mark
// rejected by the second admin leaves the key as it was.
func TestConsole_keysSecondAdmin(t *testing.T) {
	a := mustAuditAppOf(t, Config{ApproveKeyActions: true})
	srv := consoleServer(t, a)
	people := consolePeople(t, a)
	second, err := a.newSignInAccount(phivault.WithPrincipal(context.Background(), access.BootstrapPrincipal("test")),
		admin.UserCreate{Username: "secadmin2", Roles: []string{phivault.RoleSecurityAdmin}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	patient := a.create(t, "Patient", `{"resourceType":"Patient","name":[{"family":"Awaiting"}]}`)
	reads := func() int {
		t.Helper()
		status, _ := a.do(t, "GET", "/fhir/Patient/"+patient, "")
		return status
	}
	shreds := func() []*phivault.AuditEntry {
		t.Helper()
		var out []*phivault.AuditEntry
		for _, e := range a.trail(t) {
			if e.Action == phivault.ActionShred && e.TargetID == patient && e.Outcome != phivault.EFORBIDDEN { // the bootstrap token's refused
				out = append(out, e)
			}
		}
		return out
	}
	// The bootstrap token cannot shred here at all.
	if status, body := a.do(t, "POST", "/fhir/admin/patients/"+patient+"/$shred", ""); status != http.StatusForbidden {
		t.Fatalf("the bootstrap token's shred = %d %s, want 403", status, body)
	}

	sec := newConsoleBrowser(t, srv)
	sec.signIn("/console/keys", people["secadmin"])
	pg := sec.get("/console/keys")
	if !strings.Contains(pg.body, "wait for a second security admin (serve -approve-key-actions)") || !strings.Contains(pg.body, "No change awaits a second admin.") {
		t.Errorf("the keys page does not say that shreds wait:\n%s", pg.body)
	}
	got := sec.do(http.MethodPost, "/console/keys/shred", url.Values{"csrf": {sec.csrf(pg)}, "target": {patient}, "confirm": {patient}})
	if got.status != http.StatusSeeOther || got.location != "/console/keys?done=awaits" {
		t.Fatalf("shred = %d %q %s", got.status, got.location, got.body)
	}
	if s := reads(); s != http.StatusOK {
		t.Fatalf("the patient reads %d while the shred awaits approval", s)
	}
	pg = sec.get("/console/keys?done=awaits")
	if !strings.Contains(pg.body, "awaits a second security admin") || !strings.Contains(pg.body, `patient <code class="wrap">`+patient+`</code>`) ||
		!strings.Contains(pg.body, "Another security admin approves this.") {
		t.Errorf("the keys page does not list the waiting shred as another admin's to approve:\n%s", pg.body)
	}
	ids := regexp.MustCompile(`action="/console/people/changes/([0-9a-f]{32})/approve"`).FindAllStringSubmatch(pg.body, -1)
	if len(ids) != 1 {
		t.Fatalf("%d changes to approve on the keys page, want 1", len(ids))
	}
	change := ids[0][1]
	// Approving one's own request is refused by the admin API, shown on
	// the keys page.
	got = sec.do(http.MethodPost, "/console/people/changes/"+change+"/approve", url.Values{"csrf": {sec.csrf(pg)}, "back": {"keys"}})
	if got.status != http.StatusForbidden || !strings.Contains(got.body, "<h1>Keys and vault</h1>") || !strings.Contains(got.body, "another security admin") {
		t.Errorf("self-approval = %d %s", got.status, got.body)
	}
	if s, n := reads(), len(shreds()); s != http.StatusOK || n != 0 {
		t.Fatalf("after a refused self-approval the patient reads %d, %d shred entries", s, n)
	}

	sec2 := newConsoleBrowser(t, srv)
	sec2.signIn("/console/keys", second)
	pg = sec2.get("/console/keys")
	if strings.Contains(pg.body, "Another security admin approves this.") {
		t.Errorf("the second admin is told someone else approves:\n%s", pg.body)
	}
	got = sec2.do(http.MethodPost, "/console/people/changes/"+change+"/approve", url.Values{"csrf": {sec2.csrf(pg)}, "back": {"keys"}})
	if got.status != http.StatusSeeOther || got.location != "/console/keys?done=approved" {
		t.Fatalf("approval = %d %q %s", got.status, got.location, got.body)
	}
	if s := reads(); s == http.StatusOK {
		t.Error("the patient still reads after the approved shred")
	}
	if e := shreds(); len(e) != 1 || e[0].Actor != accountID(t, a, "secadmin2") || e[0].Outcome != "ok" {
		t.Errorf("shred entries %v, want one by the second admin", e)
	}

	// A compromise mark waits too; rejected, the key is as it was.
	status, body := a.do(t, "GET", "/fhir/admin/keys/status", "")
	var st struct{ Current string }
	if status != http.StatusOK || json.Unmarshal(body, &st) != nil || st.Current == "" {
		t.Fatalf("key status = %d %s", status, body)
	}
	pg = sec.get("/console/keys")
	got = sec.do(http.MethodPost, "/console/keys/compromised", url.Values{"csrf": {sec.csrf(pg)}, "target": {st.Current}, "confirm": {st.Current}})
	if got.status != http.StatusSeeOther || got.location != "/console/keys?done=awaits" {
		t.Fatalf("compromise = %d %q %s", got.status, got.location, got.body)
	}
	pg = sec2.get("/console/keys")
	ids = regexp.MustCompile(`action="/console/people/changes/([0-9a-f]{32})/reject"`).FindAllStringSubmatch(pg.body, -1)
	if len(ids) != 1 || !strings.Contains(pg.body, `key version <code class="wrap">`+st.Current+`</code>`) {
		t.Fatalf("the waiting mark is not listed (%d changes):\n%s", len(ids), pg.body)
	}
	got = sec2.do(http.MethodPost, "/console/people/changes/"+ids[0][1]+"/reject", url.Values{"csrf": {sec2.csrf(pg)}, "back": {"keys"}})
	if got.status != http.StatusSeeOther || got.location != "/console/keys?done=rejected" {
		t.Fatalf("rejection = %d %q %s", got.status, got.location, got.body)
	}
	status, body = a.do(t, "GET", "/fhir/admin/keys/status", "")
	if status != http.StatusOK || !strings.Contains(string(body), `"current":"`+st.Current+`"`) || strings.Contains(string(body), `"compromised":"`) {
		t.Errorf("after a rejected mark the key status is %d %s", status, body)
	}
}
