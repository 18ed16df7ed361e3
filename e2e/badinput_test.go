package e2e_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestBadInput sends malformed requests through the real server. Each must
// get a 4xx OperationOutcome (never a 5xx), and neither the response nor
// the server's log may repeat the value sent, which in real life could be
// PHI.
func TestBadInput(t *testing.T) {
	requireE2E(t)
	v := newVault(t)
	v.start()

	// marker stands in for PHI in every bad value.
	const marker = "Qzxwvmarker5521"
	patient := func(extra string) []byte {
		return []byte(`{"resourceType":"Patient","name":[{"family":"` + marker + `"}]` + extra + `}`)
	}
	created := v.do(http.MethodPost, "/Patient", patient(""))
	if created.status != http.StatusCreated {
		t.Fatalf("create Patient: HTTP %d: %s", created.status, created.body)
	}
	var p struct {
		ID string `json:"id"`
	}
	json.Unmarshal(created.body, &p)

	big := bytes.Repeat([]byte(marker), (17<<20)/len(marker))
	tests := []struct {
		name   string
		method string
		path   string
		body   []byte
		header []string
		want   int // 0: any 4xx
	}{
		{"not JSON", "POST", "/Patient", []byte("family=" + marker), nil, http.StatusBadRequest},
		{"truncated JSON", "POST", "/Patient", patient("")[:40], nil, http.StatusBadRequest},
		{"wrong content type", "POST", "/Patient", patient(""), []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType},
		{"XML", "POST", "/Patient", []byte(`<Patient xmlns="http://hl7.org/fhir"><name><family value="` + marker + `"/></name></Patient>`), []string{"Content-Type", "application/fhir+xml"}, http.StatusUnsupportedMediaType},
		{"unknown element", "POST", "/Patient", patient(`,"favoriteColor":"` + marker + `"`), nil, 0},
		{"invalid birthDate", "POST", "/Patient", patient(`,"birthDate":"` + marker + `"`), nil, 0},
		{"wrong resourceType for the URL", "POST", "/Observation", patient(""), nil, 0},
		{"body over 16 MiB", "POST", "/Patient", append(append([]byte(`{"resourceType":"Patient","name":[{"family":"`), big...), `"}]}`...), nil, http.StatusRequestEntityTooLarge},
		{"id mismatch", "PUT", "/Patient/" + p.ID, patient(`,"id":"` + marker + `"`), nil, http.StatusBadRequest},
		{"malformed reference", "POST", "/Observation", []byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"::::` + marker + `"}}`), nil, 0},
		{"unsupported search parameter", "GET", "/Patient?favoriteColor=" + marker, nil, nil, http.StatusBadRequest},
		{"malformed search date", "GET", "/Patient?birthdate=" + marker, nil, nil, http.StatusBadRequest},
		{"search needing a bound", "GET", "/Observation?date=ge2020", nil, nil, http.StatusBadRequest},
		{"malformed date on Observation", "GET", "/Observation?date=ge" + marker, nil, nil, http.StatusBadRequest},
		{"If-Match garbage", "PUT", "/Patient/" + p.ID, patient(`,"id":"` + p.ID + `"`), []string{"If-Match", marker}, 0},
		{"unknown resource type", "GET", "/" + marker, nil, nil, http.StatusNotFound},
		{"unknown id", "GET", "/Patient/" + marker, nil, nil, http.StatusNotFound},
		{"transaction not a Bundle", "POST", "", patient(""), nil, 0},
		{"transaction with bad entry", "POST", "", []byte(`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","birthDate":"` + marker + `"},"request":{"method":"POST","url":"Patient"}}]}`), nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := v.send(t.Context(), tt.method, tt.path, tt.body, tt.header...)
			if err != nil {
				t.Fatalf("%s %s: %v", tt.method, tt.path, err)
			}
			t.Logf("HTTP %d: %.200s", r.status, r.body)
			switch {
			case r.status >= 500:
				t.Errorf("HTTP %d, want 4xx: %s", r.status, r.body)
			case tt.want != 0 && r.status != tt.want:
				t.Errorf("HTTP %d, want %d: %s", r.status, tt.want, r.body)
			case r.status < 400:
				t.Errorf("HTTP %d, want 4xx: %s", r.status, r.body)
			}
			var oo struct {
				ResourceType string            `json:"resourceType"`
				Issue        []json.RawMessage `json:"issue"`
			}
			if err := json.Unmarshal(r.body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
				t.Errorf("body is not an OperationOutcome with issues: %.300s", r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
				t.Errorf("Content-Type %q, want application/fhir+json", ct)
			}
			if echoes(r.body, marker) {
				t.Errorf("the response repeats the value sent: %.300s", r.body)
			}
			for name, vals := range r.header {
				for _, val := range vals {
					if echoes([]byte(val), marker) {
						t.Errorf("header %s repeats the value sent", name)
					}
				}
			}
		})
	}

	v.stop()
	if echoes(v.stderr.Bytes(), marker) || echoes(v.stdout.Bytes(), marker) {
		t.Errorf("the server log repeats a value sent in a request")
	}
}

// echoes reports whether b holds marker, plainly, ignoring case, or
// percent-encoded.
func echoes(b []byte, marker string) bool {
	s := strings.ToLower(string(b))
	return strings.Contains(s, strings.ToLower(marker)) || strings.Contains(s, strings.ToLower(url.QueryEscape(marker)))
}
