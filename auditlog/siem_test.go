package auditlog_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/internal/storetest"
	"golang.org/x/mod/sumdb/note"
)

type tokenAuth string

func (a tokenAuth) Authenticate(ctx context.Context, token string) (context.Context, error) {
	if token != string(a) {
		return nil, phivault.Errorf(phivault.EUNAUTHORIZED, "Bad token.")
	}
	return phivault.WithPrincipal(ctx, &phivault.Principal{ID: "admin", Kind: phivault.PrincipalSystem}), nil
}

func siemServer(t *testing.T) (*auditlog.Log, *httptest.Server, note.Verifier) {
	t.Helper()
	signer, verifier := storetest.NewSigner(t)
	l := auditlog.New(storetest.NewMemAudit(), signer.Name(), signer)
	l.CheckpointInterval = -1
	if err := l.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	srv := httptest.NewServer(auditlog.NewSIEMHandler(l, tokenAuth("secret"), auditlog.SIEMOptions{Poll: time.Millisecond}))
	t.Cleanup(srv.Close)
	return l, srv, verifier
}

func get(t *testing.T, ctx context.Context, url, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestSIEMHandler_stream(t *testing.T) {
	l, srv, _ := siemServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := l.Append(ctx, storetest.Entry(0)); err != nil {
		t.Fatal(err)
	}
	resp := get(t, ctx, srv.URL+"/audit/stream?format=ocsf&since=0", "secret")
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	denied := storetest.Entry(1)
	denied.Outcome, denied.Roles, denied.Source = phivault.EFORBIDDEN, []string{"clinician"}, "192.0.2.7"
	if err := l.Append(ctx, denied, storetest.Entry(2)); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	var evs []auditlog.OCSFEvent
	for len(evs) < 4 && sc.Scan() {
		var ev auditlog.OCSFEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	if len(evs) != 4 {
		t.Fatalf("got %d events: %v", len(evs), sc.Err())
	}
	// The subscription is recorded before the stream starts: entry 1.
	if sub := evs[1]; sub.API.Operation != phivault.ActionExport || sub.ActivityID != 2 || sub.Metadata.Sequence != 1 ||
		len(sub.Resources) != 1 || sub.Resources[0].Type != "AuditEvent" || fmt.Sprint(sub.Unmapped["search_params"]) != "[format since]" {
		t.Errorf("subscription event = %+v", sub)
	}
	evs = slices.Delete(evs, 1, 2)
	for i, ev := range evs {
		seq := []int64{0, 2, 3}[i]
		if ev.ClassUID != 6003 || ev.CategoryUID != 6 || ev.ActivityID != 2 || ev.TypeUID != 600302 || ev.Metadata.Sequence != seq {
			t.Errorf("event %d: class %d category %d activity %d type %d sequence %d", i, ev.ClassUID, ev.CategoryUID, ev.ActivityID, ev.TypeUID, ev.Metadata.Sequence)
		}
		if ev.API.Operation != "read" || ev.Actor.User.UID != "admin" || ev.API.Request.UID != fmt.Sprintf("req%04d", i) {
			t.Errorf("event %d: operation %q actor %q request %+v", i, ev.API.Operation, ev.Actor.User.UID, ev.API.Request)
		}
		want := []string{fmt.Sprintf("Observation/obs-%d/_history/1", i), fmt.Sprintf("Observation/obs-%d/_history/1", i)}
		if len(ev.Resources) != 2 || ev.Resources[0].UID != want[0] || ev.Resources[1].UID != want[1] || ev.Resources[0].Type != "Observation" {
			t.Errorf("event %d: resources %+v, want %q", i, ev.Resources, want)
		}
	}
	if ev := evs[1]; ev.StatusID != 2 || ev.Status != "Failure" || ev.StatusCode != phivault.EFORBIDDEN ||
		ev.SrcEndpoint.IP != "192.0.2.7" || len(ev.Actor.User.Groups) != 1 || ev.Actor.User.Groups[0].Name != "clinician" {
		t.Errorf("denied event = %+v", ev)
	}
	if evs[0].StatusID != 1 || evs[0].Status != "Success" {
		t.Errorf("allowed event status = %d %q", evs[0].StatusID, evs[0].Status)
	}
}

func TestSIEMHandler_export(t *testing.T) {
	l, srv, verifier := siemServer(t)
	ctx := context.Background()
	for i := range 20 {
		if err := l.Append(ctx, storetest.Entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	from := storetest.Entry(5).Time.Format(time.RFC3339Nano)
	to := storetest.Entry(15).Time.Format(time.RFC3339Nano)
	resp := get(t, ctx, srv.URL+"/audit/export?size=20&from="+from+"&to="+to, "secret")
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	c, n, err := auditlog.VerifyExport(resp.Body, cp, verifier, "")
	if err != nil || n != 10 || c.N != 20 {
		t.Errorf("VerifyExport = %d entries of %d, %v; want 10 of 20", n, c.N, err)
	}
}

// TestSIEMHandler_exportByIndex selects entries by index, start ≤ index
// < end, and refuses indexes that are not numbers or out of order.
func TestSIEMHandler_exportByIndex(t *testing.T) {
	l, srv, verifier := siemServer(t)
	ctx := context.Background()
	for i := range 20 {
		if err := l.Append(ctx, storetest.Entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	resp := get(t, ctx, srv.URL+"/audit/export?size=20&start=7&end=9", "secret")
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var first auditlog.ExportLine
	json.Unmarshal(bytes.SplitN(body, []byte("\n"), 2)[0], &first)
	c, n, err := auditlog.VerifyExport(bytes.NewReader(body), cp, verifier, "")
	if resp.StatusCode != 200 || err != nil || n != 2 || c.N != 20 || first.Index != 7 {
		t.Errorf("export start=7 end=9 = %d: %d entries from %d, %v; want 2 from 7", resp.StatusCode, n, first.Index, err)
	}
	for _, q := range []string{"start=x", "start=-1", "start=5&end=5", "end=y"} {
		resp := get(t, ctx, srv.URL+"/audit/export?"+q, "secret")
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("export ?%s = %d, want 400", q, resp.StatusCode)
		}
	}
}

func TestSIEMHandler_auth(t *testing.T) {
	_, srv, _ := siemServer(t)
	for _, path := range []string{"/audit/export", "/audit/stream"} {
		for _, token := range []string{"", "wrong"} {
			resp := get(t, context.Background(), srv.URL+path, token)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("GET %s with token %q: status %d, WWW-Authenticate %q; want 401 with a Bearer challenge",
					path, token, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
		}
	}
	resp := get(t, context.Background(), srv.URL+"/audit/export?from=yesterday", "secret")
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad time: status %d, want 400", resp.StatusCode)
	}
}
