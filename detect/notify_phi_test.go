package detect_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/phivault/phivault/detect"
)

// Alerts carry ids, never PHI: a triage note full of PHI is triaged onto
// an alert, which is then sent through every output; each output holds
// the alert's ids, and none holds any of the note.
func TestAlertContents_NoPHI(t *testing.T) {
	phi := []string{"Dupont", "Jean", "rue des Lilas", "06 12 34 56 78", "1957-03-14"}
	note := "Jean Dupont (born 1957-03-14), 12 rue des Lilas, phone 06 12 34 56 78, is her neighbour"

	f := newAlertsFixture(t)
	a := f.alerts[0]
	outputs := map[string][]byte{}
	body, _ := json.Marshal(map[string]string{"decision": "true-positive", "note": note})
	outputs["triage answer"] = f.do(t, "officer", "POST", "/security/alerts/"+a.ID+"/triage", string(body)).Body.Bytes()
	outputs["alerts list"] = f.do(t, "officer", "GET", "/security/alerts?user="+a.User, "").Body.Bytes()
	entries, _ := json.Marshal(f.log.entries)
	outputs["audit entries"] = entries
	stored, _ := f.store.Triages(t.Context(), "")
	storedJSON, _ := json.Marshal(stored)
	outputs["stored triages"] = storedJSON

	// Every notifier at once, through the dispatcher.
	var ocsf bytes.Buffer
	cef := &cefSink{}
	var hookMu sync.Mutex
	var hook []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hookMu.Lock()
		hook = b
		hookMu.Unlock()
	}))
	defer srv.Close()
	addr, mailbox, pool := startSMTP(t, true)
	reg := prometheus.NewRegistry()
	m, err := detect.NewMetrics(reg, func() int64 { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	d := detect.NewDispatcher()
	d.Metrics = m
	d.Notifiers = map[string]detect.Notifier{
		"ocsf":    &detect.OCSFStream{W: &ocsf},
		"cef":     &detect.CEFStream{Sender: cef},
		"webhook": &detect.Webhook{URL: srv.URL, Secret: []byte("k")},
		"mail":    &detect.Mailer{Addr: addr, From: "phivault@clinic.test", To: []string{"privacy@clinic.test"}, TLS: &tls.Config{RootCAs: pool}, RequireTLS: true},
	}
	if err := d.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	triaged, err := f.store.Alert(t.Context(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	d.OnCommit([]*detect.Alert{triaged})
	if err := d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	outputs["ocsf"] = ocsf.Bytes()
	outputs["cef"] = []byte(strings.Join(cef.lines, "\n"))
	outputs["webhook"] = hook
	msgs := mailbox.messages()
	if len(msgs) != 1 {
		t.Fatalf("the mailer delivered %d messages, want 1: the mail output would go unchecked", len(msgs))
	}
	outputs["mail"] = msgs[0].data
	var metrics bytes.Buffer
	if mfs, err := reg.Gather(); err == nil {
		for _, mf := range mfs {
			metrics.WriteString(mf.String())
		}
	}
	if n, _ := testutil.GatherAndCount(reg, "phivault_detect_alerts_total"); n != 1 {
		t.Errorf("alerts_total has %d series, want 1", n)
	}
	outputs["metrics"] = metrics.Bytes()

	for name, out := range outputs {
		if len(out) == 0 {
			t.Errorf("%s: no output", name)
			continue
		}
		for _, s := range phi {
			if bytes.Contains(out, []byte(s)) {
				t.Errorf("%s holds PHI %q", name, s)
			}
		}
		var wants []string
		switch name {
		case "metrics":
			wants = []string{a.Rule}
		case "stored triages":
			wants = []string{a.ID}
		case "audit entries":
			wants = []string{a.ID, a.Patients[0]}
		default:
			wants = []string{a.ID, a.User, a.Patients[0]}
		}
		for _, w := range wants {
			if !bytes.Contains(out, []byte(w)) {
				t.Errorf("%s lacks id %q: the check above would prove nothing", name, w)
			}
		}
		if name == "metrics" && (bytes.Contains(out, []byte(`"`+a.User+`"`)) || bytes.Contains(out, []byte(`"`+a.Patients[0]+`"`))) {
			t.Errorf("metrics hold a user or patient id:\n%s", out)
		}
	}
}
