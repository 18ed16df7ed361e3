package auditlog_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/internal/storetest"
	"github.com/phivault/phivault/sqlite"
	"golang.org/x/mod/sumdb/note"
)

// cefEvent is a parsed CEF line.
type cefEvent struct {
	Header [7]string // CEF:0, vendor, product, version, signature id, name, severity; unescaped
	Ext    map[string]string
}

// parseCEF parses a CEF line the way a SIEM does: the header splits on
// pipes not preceded by a backslash; the extension is key=value pairs,
// where a key is the word before an unescaped '='.
func parseCEF(t *testing.T, line string) cefEvent {
	t.Helper()
	var ev cefEvent
	rest := line
	for i := range 7 {
		var field strings.Builder
		j := 0
		for ; j < len(rest); j++ {
			c := rest[j]
			if c == '\\' && j+1 < len(rest) {
				j++
				if rest[j] != '\\' && rest[j] != '|' {
					t.Fatalf("bad header escape \\%c in %q", rest[j], line)
				}
				field.WriteByte(rest[j])
				continue
			}
			if c == '|' {
				break
			}
			if c == '\n' || c == '\r' {
				t.Fatalf("line break in header of %q", line)
			}
			field.WriteByte(c)
		}
		if j == len(rest) {
			t.Fatalf("header field %d unterminated in %q", i, line)
		}
		ev.Header[i] = field.String()
		rest = rest[j+1:]
	}
	if strings.ContainsAny(rest, "\n\r") {
		t.Fatalf("raw line break in extension of %q", line)
	}
	// Positions of unescaped '='.
	var eqs []int
	for j := 0; j < len(rest); j++ {
		if rest[j] == '\\' {
			j++
			continue
		}
		if rest[j] == '=' {
			eqs = append(eqs, j)
		}
	}
	ev.Ext = map[string]string{}
	keyStart := 0
	for n, eq := range eqs {
		key := rest[keyStart:eq]
		if key == "" || strings.ContainsAny(key, " \\") {
			t.Fatalf("bad extension key %q in %q", key, line)
		}
		end := len(rest)
		if n+1 < len(eqs) {
			end = strings.LastIndexByte(rest[:eqs[n+1]], ' ')
			if end <= eq {
				t.Fatalf("no key before '=' at %d in %q", eqs[n+1], line)
			}
		}
		raw := rest[eq+1 : end]
		var v strings.Builder
		for j := 0; j < len(raw); j++ {
			if raw[j] != '\\' {
				v.WriteByte(raw[j])
				continue
			}
			j++
			switch raw[j] {
			case '\\', '=':
				v.WriteByte(raw[j])
			case 'n':
				v.WriteByte('\n')
			case 'r':
				v.WriteByte('\r')
			default:
				t.Fatalf("bad extension escape \\%c in %q", raw[j], line)
			}
		}
		if _, dup := ev.Ext[key]; dup {
			t.Fatalf("duplicate key %q in %q", key, line)
		}
		ev.Ext[key] = v.String()
		keyStart = end + 1
	}
	return ev
}

func TestCEF_escaping(t *testing.T) {
	e := &phivault.AuditEntry{
		Time:          time.Date(2025, 3, 1, 12, 0, 0, 5e6, time.UTC),
		RequestID:     "req=1",
		Actor:         `dom\user|x=y`,
		Roles:         []string{"physician", "privacy-officer"},
		Client:        "app\nline2\r",
		Source:        "2001:db8::7",
		Action:        "read",
		TargetType:    "Observation",
		TargetID:      "obs-1",
		TargetVersion: 3,
		Compartments:  []string{"p1", "p2"},
		SearchParams:  []string{"code", "date:ge"},
		Returned:      []string{"Observation/obs-1/_history/3"},
		Outcome:       phivault.EFORBIDDEN,
		Decision:      "deny: forbid-no-care-relationship",
		Purpose:       "TREAT",
	}
	line := auditlog.CEF(42, "phivault-audit-1a2b", "1.2|3", e)
	want := `CEF:0|phivault|phivault|1.2\|3|read|read Observation: forbidden|6|` +
		`rt=1740830400005 externalId=42 deviceExternalId=phivault-audit-1a2b act=read outcome=forbidden ` +
		`suid=dom\\user|x\=y spriv=physician privacy-officer src=2001:db8::7 ` +
		`cs1Label=requestId cs1=req\=1 cs2Label=clientId cs2=app\nline2\r cs3Label=decision cs3=deny: forbid-no-care-relationship ` +
		`cs4Label=purposeOfUse cs4=TREAT cs5Label=patients cs5=p1 p2 cn1Label=patientCount cn1=2 ` +
		`cs6Label=returned cs6=Observation/obs-1/_history/3 cn2Label=returnedCount cn2=1 ` +
		`flexString1Label=target flexString1=Observation/obs-1/_history/3 flexString2Label=searchParams flexString2=code date:ge`
	if line != want {
		t.Errorf("CEF =\n%s\nwant\n%s", line, want)
	}
	ev := parseCEF(t, line)
	if ev.Header[3] != "1.2|3" || ev.Header[5] != "read Observation: forbidden" {
		t.Errorf("header = %q", ev.Header)
	}
	for k, v := range map[string]string{"suid": e.Actor, "cs1": e.RequestID, "cs2": e.Client, "spriv": "physician privacy-officer", "cs3": e.Decision} {
		if ev.Ext[k] != v {
			t.Errorf("%s = %q, want %q", k, ev.Ext[k], v)
		}
	}

	// Header escaping of backslash and pipe; severities; a non-IP source.
	e2 := &phivault.AuditEntry{Time: e.Time, Action: `a\b|c`, Outcome: "ok", Source: "unix-socket", Decision: "break-glass permit"}
	ev = parseCEF(t, auditlog.CEF(0, "o", "v", e2))
	if ev.Header[4] != `a\b|c` || ev.Header[6] != "8" || ev.Ext["shost"] != "unix-socket" || ev.Ext["src"] != "" {
		t.Errorf("header %q, ext %v", ev.Header, ev.Ext)
	}
	for outcome, sev := range map[string]string{"ok": "3", phivault.EINVALID: "5", phivault.EUNAUTHORIZED: "6", phivault.EINTEGRITY: "9"} {
		ev := parseCEF(t, auditlog.CEF(0, "o", "v", &phivault.AuditEntry{Time: e.Time, Action: "read", Outcome: outcome}))
		if ev.Header[6] != sev {
			t.Errorf("outcome %s: severity %s, want %s", outcome, ev.Header[6], sev)
		}
	}

	// A long list is cut at a space within 4,000 characters; the count is whole.
	many := &phivault.AuditEntry{Time: e.Time, Action: "search", Outcome: "ok"}
	for i := range 1000 {
		many.Returned = append(many.Returned, fmt.Sprintf("Observation/o%d/_history/1", i))
	}
	ev = parseCEF(t, auditlog.CEF(0, "o", "v", many))
	if got := ev.Ext["cs6"]; len(got) > 4000 || len(got) < 3900 || !strings.HasSuffix(got, "/_history/1") || ev.Ext["cn2"] != "1000" {
		t.Errorf("cs6 has %d chars, cn2 %q", len(got), ev.Ext["cn2"])
	}
}

// cefSyslog is a syslog-over-TLS server for the tests: it parses RFC 5425
// octet-counted frames and RFC 5424 headers, and keeps every message with
// the number of the connection it came on.
type cefSyslog struct {
	t    *testing.T
	cert tls.Certificate
	Pool *x509.CertPool
	Addr string

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
	msgs  []cefMsg
	ch    chan struct{}
}

type cefMsg struct {
	Conn   int
	Header string // PRI VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD
	Event  cefEvent
}

func newCEFSyslog(t *testing.T) *cefSyslog {
	hs := httptest.NewUnstartedServer(nil)
	hs.StartTLS()
	s := &cefSyslog{t: t, cert: hs.TLS.Certificates[0], Pool: x509.NewCertPool(), ch: make(chan struct{}, 1)}
	s.Pool.AddCert(hs.Certificate())
	hs.Close()
	// Reserve a port; the server is started with Listen.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	ln.Close()
	t.Cleanup(s.Stop)
	return s
}

// Listen starts accepting on Addr.
func (s *cefSyslog) Listen() {
	ln, err := tls.Listen("tcp", s.Addr, &tls.Config{Certificates: []tls.Certificate{s.cert}})
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			n := len(s.conns)
			s.mu.Unlock()
			go s.read(c, n)
		}
	}()
}

func (s *cefSyslog) read(c net.Conn, conn int) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		n, err := r.ReadString(' ')
		if err != nil {
			return
		}
		size, err := strconv.Atoi(strings.TrimSuffix(n, " "))
		if err != nil || size <= 0 {
			s.t.Errorf("frame length %q", n)
			return
		}
		msg := make([]byte, size)
		if _, err := io.ReadFull(r, msg); err != nil {
			return // connection cut mid-frame
		}
		f := strings.SplitN(string(msg), " ", 8)
		if len(f) != 8 {
			s.t.Errorf("message %q", msg)
			return
		}
		m := cefMsg{Conn: conn, Header: strings.Join(f[:7], " "), Event: parseCEF(s.t, f[7])}
		s.mu.Lock()
		s.msgs = append(s.msgs, m)
		s.mu.Unlock()
		select {
		case s.ch <- struct{}{}:
		default:
		}
	}
}

// Drop closes every open connection, as a restarting server would.
func (s *cefSyslog) Drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

// Stop closes the listener and every connection.
func (s *cefSyslog) Stop() {
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	s.mu.Unlock()
	s.Drop()
}

// Wait waits until cond holds for the messages so far.
func (s *cefSyslog) Wait(what string, cond func([]cefMsg) bool) []cefMsg {
	s.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		msgs := append([]cefMsg(nil), s.msgs...)
		s.mu.Unlock()
		if cond(msgs) {
			return msgs
		}
		select {
		case <-s.ch:
		case <-time.After(5 * time.Millisecond):
		case <-deadline:
			s.t.Fatalf("timed out waiting for %s; got %d messages", what, len(msgs))
		}
	}
}

// openSQLiteLog opens a Log on a fresh SQLite database, and returns it
// with the database and the verifier of its checkpoints.
func openSQLiteLog(t *testing.T) (*auditlog.Log, *sqlite.DB, note.Verifier) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vault.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	signer, verifier := storetest.NewSigner(t)
	l := auditlog.New(db, signer.Name(), signer)
	l.CheckpointInterval = -1
	if err := l.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, db, verifier
}

func appendN(t *testing.T, l *auditlog.Log, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := l.Append(context.Background(), storetest.Entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestCEFForwarder_syslog forwards entries of a SQLite-backed log to a real
// TLS syslog listener that starts late and later drops the connection: the
// forwarder retries with backoff, reconnects, and every entry arrives, in
// order, as a well-formed RFC 5424 message with CEF fields.
func TestCEFForwarder_syslog(t *testing.T) {
	l, _, _ := openSQLiteLog(t)
	appendN(t, l, 0, 3) // before the forwarder: not sent
	srv := newCEFSyslog(t)
	w := &auditlog.SyslogWitness{Addr: srv.Addr, TLS: &tls.Config{RootCAs: srv.Pool, ServerName: "127.0.0.1"}, Hostname: "vault1", Timeout: time.Second}
	f := auditlog.NewCEFForwarder(l, w, l.Tree().N, auditlog.CEFOptions{
		Version: "9.9", Poll: time.Millisecond, Batch: 4, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
	})
	appendN(t, l, 3, 10)
	// The server is not up yet: dials fail and are retried.
	for f.Stats().Failures < 2 {
		time.Sleep(time.Millisecond)
	}
	if st := f.Stats(); st.Sent != 0 || st.Lag != 10 {
		t.Errorf("before the server is up: %+v, want 0 sent, lag 10", st)
	}
	srv.Listen()
	msgs := srv.Wait("10 entries", func(m []cefMsg) bool { return len(m) >= 10 })
	for i, m := range msgs {
		idx := 3 + i
		e := storetest.Entry(idx)
		wantHeader := "<110>1 " + e.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00") + " vault1 phivault - cef -"
		if m.Header != wantHeader {
			t.Errorf("message %d header %q, want %q", i, m.Header, wantHeader)
		}
		h, x := m.Event.Header, m.Event.Ext
		if h != [7]string{"CEF:0", "phivault", "phivault", "9.9", "read", "read Observation", "3"} {
			t.Errorf("message %d CEF header %q", i, h)
		}
		if x["externalId"] != strconv.Itoa(idx) || x["act"] != "read" || x["suid"] != e.Actor || x["outcome"] != "ok" ||
			x["cs1"] != e.RequestID || x["flexString1"] != "Observation/"+e.TargetID+"/_history/1" ||
			x["deviceExternalId"] != l.Origin || x["rt"] != strconv.FormatInt(e.Time.UnixMilli(), 10) {
			t.Errorf("message %d extension %v", i, x)
		}
	}

	// The server drops the connection: new entries are sent on a new one.
	srv.Drop()
	next := 13
	srv.Wait("an entry on a second connection", func(m []cefMsg) bool {
		if m[len(m)-1].Conn > 1 {
			return true
		}
		appendN(t, l, next, 1) // keep writing so the broken connection is noticed
		next++
		return false
	})
	last := next - 1
	msgs = srv.Wait("every entry", func(m []cefMsg) bool {
		return m[len(m)-1].Event.Ext["externalId"] == strconv.Itoa(last)
	})
	// On the new connection, indexes rise one by one up to the last.
	prev := -1
	for _, m := range msgs {
		if m.Conn < 2 {
			continue
		}
		idx, _ := strconv.Atoi(m.Event.Ext["externalId"])
		if prev >= 0 && idx != prev+1 {
			t.Errorf("on the new connection, entry %d follows %d", idx, prev)
		}
		prev = idx
	}
	if err := f.Close(context.Background()); err != nil {
		t.Error(err)
	}
	if st := f.Stats(); st.Failures < 2 || st.Lag != 0 || st.Dropped != 0 {
		t.Errorf("Stats() = %+v", st)
	}
}

// TestCEFForwarder_backpressure shows a syslog server that accepts TCP but
// never completes TLS holds up neither the log nor Close: appends finish,
// the forwarder keeps at most MaxLag entries pending and counts the rest as
// dropped, and Close returns when its context ends.
func TestCEFForwarder_backpressure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, never answer
		}
	}()
	l, _, _ := openSQLiteLog(t)
	w := &auditlog.SyslogWitness{Addr: ln.Addr().String(), TLS: &tls.Config{ServerName: "127.0.0.1"}, Timeout: 20 * time.Millisecond}
	f := auditlog.NewCEFForwarder(l, w, 0, auditlog.CEFOptions{
		Poll: time.Millisecond, MaxLag: 50, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
	})
	appendN(t, l, 0, 500)
	deadline := time.Now().Add(10 * time.Second)
	for f.Stats().Dropped < 450 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if st := f.Stats(); st.Dropped != 450 || st.Sent != 0 || st.Lag != 50 || st.Failures == 0 {
		t.Errorf("Stats() = %+v, want 450 dropped, 0 sent, lag 50, failures", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	f.Close(ctx) // returns though nothing can be delivered
}
