package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/access"
	"github.com/phivault/phivault/admin"
	"github.com/pquerna/otp/totp"
)

// consoleBrowser is a browser of the console: a cookie jar over TLS
// that does not follow redirects, so that each step can be checked.
type consoleBrowser struct {
	t      *testing.T
	srv    *httptest.Server
	client *http.Client
}

// consoleServer serves a over TLS, as the server does.
func consoleServer(t *testing.T, a *auditApp) *httptest.Server {
	srv := httptest.NewTLSServer(a.backend())
	t.Cleanup(srv.Close)
	return srv
}

func newConsoleBrowser(t *testing.T, srv *httptest.Server) *consoleBrowser {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: srv.Client().Transport, Jar: jar}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &consoleBrowser{t: t, srv: srv, client: c}
}

// page is one answer of the console.
type page struct {
	status   int
	location string
	body     string
}

func (b *consoleBrowser) do(method, path string, form url.Values, header ...string) page {
	b.t.Helper()
	res, out := b.file(method, path, form, header...)
	loc := res.Header.Get("Location")
	if u, err := url.Parse(loc); err == nil && u.Host != "" {
		loc = u.RequestURI()
	}
	return page{status: res.StatusCode, location: loc, body: string(out)}
}

// file sends one request (form, if not nil, as its urlencoded body; then
// header's name and value pairs) and returns the answer with its bytes:
// a page, or a download.
func (b *consoleBrowser) file(method, path string, form url.Values, header ...string) (*http.Response, []byte) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.srv.URL+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return res, out
}

func (b *consoleBrowser) get(path string) page { b.t.Helper(); return b.do(http.MethodGet, path, nil) }

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn follows the console's sign-in as p, from page path, through the
// vault's login page, and returns the page it lands on.
func (b *consoleBrowser) signIn(path string, p demoPerson) page {
	b.t.Helper()
	pg := b.get(path)
	for range 2 { // the page → /console/signin → /oauth/authorize
		if pg.status != http.StatusSeeOther {
			b.t.Fatalf("GET on the way to sign in = %d %s", pg.status, pg.body)
		}
		pg = b.get(pg.location)
	}
	pending, csrf := pendingField.FindStringSubmatch(pg.body), csrfField.FindStringSubmatch(pg.body)
	if pg.status != http.StatusOK || pending == nil || csrf == nil {
		b.t.Fatalf("login page = %d %s", pg.status, pg.body)
	}
	code, err := totp.GenerateCode(p.TOTP, time.Now())
	if err != nil {
		b.t.Fatal(err)
	}
	pg = b.do(http.MethodPost, "/oauth/login", url.Values{"pending": {pending[1]}, "csrf": {csrf[1]},
		"username": {p.Username}, "password": {p.Password}, "totp": {code}})
	if pg.status != http.StatusSeeOther || !strings.HasPrefix(pg.location, "/console/callback?") {
		b.t.Fatalf("login = %d %q %s", pg.status, pg.location, pg.body)
	}
	return b.get(pg.location)
}

// csrf returns the CSRF token of a console page.
func (b *consoleBrowser) csrf(pg page) string {
	b.t.Helper()
	m := csrfField.FindStringSubmatch(pg.body)
	if m == nil {
		b.t.Fatalf("no CSRF token in the page:\n%s", pg.body)
	}
	return m[1]
}

// consolePeople makes a privacy officer, a security admin and a nurse
// who sign in with a password and TOTP.
func consolePeople(t *testing.T, a *auditApp) map[string]demoPerson {
	t.Helper()
	ctx := phivault.WithPrincipal(context.Background(), access.BootstrapPrincipal("test"))
	out := map[string]demoPerson{}
	for _, u := range []admin.UserCreate{
		{Username: "privacy", Roles: []string{phivault.RolePrivacyOfficer}},
		{Username: "secadmin", Roles: []string{phivault.RoleSecurityAdmin}},
		{Username: "nurse", Roles: []string{"nurse"}},
	} {
		u.TrainingValidUntil = time.Now().AddDate(1, 0, 0).Format(time.DateOnly)
		p, err := a.newSignInAccount(ctx, u, "test")
		if err != nil {
			t.Fatal(err)
		}
		out[u.Username] = p
	}
	return out
}

// TestConsole_signIn signs officers and a nurse in through the vault's
// own login page, and checks what each may open.
func TestConsole_signIn(t *testing.T) {
	a := mustAuditApp(t)
	srv := consoleServer(t, a)
	people := consolePeople(t, a)

	officer := newConsoleBrowser(t, srv)
	pg := officer.signIn("/console/alerts?state=open", people["privacy"])
	if pg.status != http.StatusOK || !strings.Contains(pg.body, `url=/console/alerts?state=open`) {
		t.Fatalf("callback = %d %s", pg.status, pg.body)
	}
	if pg = officer.get("/console/alerts?state=open"); pg.status != http.StatusOK || !strings.Contains(pg.body, "<h1>Alerts</h1>") {
		t.Fatalf("alerts = %d %s", pg.status, pg.body)
	}
	if pg = officer.get("/console/"); pg.status != http.StatusOK || !strings.Contains(pg.body, "<h1>Overview</h1>") {
		t.Fatalf("overview = %d %s", pg.status, pg.body)
	}
	for _, want := range []string{"Alerts detected per day", "Users by risk score", "<dt>Seal</dt><dd>unsealed", "no scheduled backups", "Latest signed checkpoint"} {
		if !strings.Contains(pg.body, want) {
			t.Errorf("the overview lacks %q", want)
		}
	}

	nurse := newConsoleBrowser(t, srv)
	nurse.signIn("/console/", people["nurse"])
	if pg = nurse.get("/console/"); pg.status != http.StatusSeeOther || pg.location != "/console/report" {
		t.Fatalf("the nurse's home = %d %q", pg.status, pg.location)
	}
	for _, path := range []string{"/console/alerts", "/console/alerts/x"} {
		pg = nurse.get(path)
		if pg.status != http.StatusForbidden || !strings.Contains(pg.body, "Not allowed") || strings.Contains(pg.body, `href="/console/alerts"`) {
			t.Fatalf("the nurse's %s = %d %s", path, pg.status, pg.body)
		}
	}
	form := nurse.get("/console/report")
	if form.status != http.StatusOK {
		t.Fatalf("report form = %d", form.status)
	}
	// A form without the session's CSRF token, or from another site, is refused.
	if pg = nurse.do(http.MethodPost, "/console/report", url.Values{"kind": {"phishing"}, "description": {"x"}}); pg.status != http.StatusForbidden {
		t.Fatalf("report without a CSRF token = %d", pg.status)
	}
	if pg = nurse.do(http.MethodPost, "/console/report", url.Values{"csrf": {officer.csrf(officer.get("/console/"))}, "kind": {"phishing"}, "description": {"x"}}); pg.status != http.StatusForbidden {
		t.Fatalf("report with another session's CSRF token = %d", pg.status)
	}
	good := url.Values{"csrf": {nurse.csrf(form)}, "kind": {"phishing"}, "description": {"a link to a fake sign-in page"}}
	if pg = nurse.do(http.MethodPost, "/console/report", good, "Sec-Fetch-Site", "cross-site"); pg.status != http.StatusForbidden {
		t.Fatalf("report from another site = %d", pg.status)
	}
	if pg = nurse.do(http.MethodPost, "/console/report", good); pg.status != http.StatusCreated || !strings.Contains(pg.body, `id="receipt"`) {
		t.Fatalf("report = %d %s", pg.status, pg.body)
	}

	// A session whose OAuth session ended is sent back to sign in.
	if err := a.signIn.RevokeSubject(context.Background(), accountID(t, a, "nurse")); err != nil {
		t.Fatal(err)
	}
	if pg = nurse.get("/console/reports"); pg.status != http.StatusSeeOther || pg.location != "/console/signin?next=%2Fconsole%2Freports" {
		t.Fatalf("after revocation = %d %q", pg.status, pg.location)
	}
	// Signing out ends the session.
	home := officer.get("/console/")
	if pg = officer.do(http.MethodPost, "/console/signout", url.Values{"csrf": {officer.csrf(home)}}); pg.status != http.StatusOK {
		t.Fatalf("sign out = %d", pg.status)
	}
	if pg = officer.get("/console/"); pg.status != http.StatusSeeOther {
		t.Fatalf("after sign-out = %d", pg.status)
	}
}

// accountID returns the id of the account named username.
func accountID(t *testing.T, a *auditApp, username string) string {
	t.Helper()
	acc, err := a.accounts.AccountByUsername(context.Background(), username)
	if err != nil {
		t.Fatal(err)
	}
	return acc.ID
}

// TestBenchConsole: "bench -mode console" signs in as an officer, finds
// the pages and measures each, with the server's time from the console's
// Server-Timing header.
func TestBenchConsole(t *testing.T) {
	a := mustAuditApp(t)
	srv := consoleServer(t, a)
	people := consolePeople(t, a)
	cert := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PHIVAULT_PASSWORD", people["privacy"].Password)
	t.Setenv("PHIVAULT_TOTP_SECRET", people["privacy"].TOTP)
	var out, errOut bytes.Buffer
	a.create(t, "Patient", `{"resourceType":"Patient","name":[{"family":"Benchfinder"}]}`)
	err := run(context.Background(), []string{"bench", "-mode", "console", "-user", "privacy", "-n", "3", "-url", srv.URL + "/fhir", "-cacert", cert,
		"-search", "benchfinder"}, &out, &errOut)
	if err != nil {
		t.Fatalf("bench -mode console: %v\n%s", err, errOut.String())
	}
	if strings.Contains(out.String(), "enchfinder") {
		t.Errorf("the bench printed the name it searched:\n%s", out.String())
	}
	for _, page := range []string{"/console/ ", "/console/alerts ", "/console/report ", "/console/reports ", "POST /console/access (search 1) "} {
		line := ""
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(l, page) {
				line = l
			}
		}
		if f := strings.Fields(strings.TrimPrefix(line, page)); len(f) != 7 || f[0] != "3" || f[1] == "0s" {
			t.Errorf("no measure of %s (server time 0 = no Server-Timing):\n%s", page, out.String())
		}
	}
	t.Setenv("PHIVAULT_PASSWORD", "wrong")
	if err := run(context.Background(), []string{"bench", "-mode", "console", "-user", "privacy", "-url", srv.URL + "/fhir", "-cacert", cert}, &out, &errOut); err == nil {
		t.Error("bench -mode console with a wrong password did not fail")
	}
}

// TestConsole_patientRefused: a patient who signs in through the
// console's own sign-in gets no session (the console is for staff; their
// access report stays in the API and apps): the OAuth server refuses the
// console's user scopes to a patient, before any token is issued.
func TestConsole_patientRefused(t *testing.T) {
	a := mustAuditApp(t)
	srv := consoleServer(t, a)
	status, body := a.do(t, http.MethodPost, "/fhir/Patient", `{"resourceType":"Patient","name":[{"family":"Testperson"}]}`)
	var pat struct{ ID string }
	if status != http.StatusCreated || json.Unmarshal(body, &pat) != nil {
		t.Fatalf("create patient = %d %s", status, body)
	}
	ctx := phivault.WithPrincipal(context.Background(), access.BootstrapPrincipal("test"))
	p, err := a.newSignInAccount(ctx, admin.UserCreate{Username: "pat", Kind: phivault.PrincipalPatient, PatientID: pat.ID}, "test")
	if err != nil {
		t.Fatal(err)
	}
	b := newConsoleBrowser(t, srv)
	pg := b.signIn("/console/report", p)
	if pg.status != http.StatusForbidden || !strings.Contains(pg.body, "may not use the console") || strings.Contains(pg.body, "url=") {
		t.Fatalf("a patient's callback = %d %s", pg.status, pg.body)
	}
	if pg = b.get("/console/report"); pg.status != http.StatusSeeOther || !strings.HasPrefix(pg.location, "/console/signin") {
		t.Fatalf("the patient's next page = %d %q, want sent to sign in", pg.status, pg.location)
	}
}
