package detect_test

import (
	"context"
	"strings"
	"testing"

	"github.com/phivault/phivault/detect"
)

// TestParseIngest_decoyLabel: a patient roster line labelled "honeytoken"
// (any case, NDJSON or CSV) declares a decoy of its system, right after
// the patient, and the label is not kept on the patient.
func TestParseIngest_decoyLabel(t *testing.T) {
	tests := []struct {
		name, ctype, body string
	}{
		{"ndjson", detect.ContentNDJSON, `{"system":"ehr","id":"p1","labels":["VIP","HoneyToken"]}` + "\n"},
		{"csv", detect.ContentCSV, "system,id,labels\nehr,p1,VIP;honeytoken\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, rep, err := detect.ParseIngest(context.Background(), newIngestTokenizer(t), detect.IngestPatients, tt.ctype, strings.NewReader(tt.body), detect.IngestOptions{})
			if err != nil || rep.Accepted != 1 || rep.Rejected != 0 {
				t.Fatalf("ParseIngest: %+v, %v", rep, err)
			}
			if len(recs) != 2 || recs[0].Patient == nil || recs[1].Kind != detect.RecordHoneytoken || recs[1].Honeytoken != "ehr:p1" {
				t.Fatalf("records %+v, want the patient then a honeytoken ehr:p1", recs)
			}
			if got := recs[0].Patient.Labels; len(got) != 1 || got[0] != detect.LabelVIP {
				t.Errorf("labels %v, want [VIP]", got)
			}
		})
	}
}

// TestParseIngest_decoyLabelNearMiss: other labels, and the label on a
// staff line, declare nothing.
func TestParseIngest_decoyLabelNearMiss(t *testing.T) {
	tests := []struct {
		name, kind, body string
	}{
		{"honeytokens", detect.IngestPatients, `{"system":"ehr","id":"p1","labels":"honeytokens;decoy"}`},
		{"no label", detect.IngestPatients, `{"system":"ehr","id":"p1"}`},
		{"staff", detect.IngestStaff, `{"system":"ehr","id":"s1","labels":"honeytoken"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, _, err := detect.ParseIngest(context.Background(), newIngestTokenizer(t), tt.kind, detect.ContentNDJSON, strings.NewReader(tt.body+"\n"), detect.IngestOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.Kind == detect.RecordHoneytoken {
					t.Errorf("records %+v: a decoy was declared", recs)
				}
			}
		})
	}
}

// TestParseIngest_decoyOfTheVault: a decoy line can only name a patient
// "system:id" of an ingested system. Without a system, or with one that
// holds a ':', the line is rejected and declares nothing, so a sender can
// never mark one of the vault's own patients (FHIR ids, without ':').
func TestParseIngest_decoyOfTheVault(t *testing.T) {
	tests := []struct {
		name, body string
		opts       detect.IngestOptions
		want       string // the decoy declared, or "" for a rejected line
	}{
		{"no system", `{"id":"p1","labels":"honeytoken"}`, detect.IngestOptions{}, ""},
		{"empty system", `{"system":" ","id":"p1","labels":"honeytoken"}`, detect.IngestOptions{}, ""},
		{"system with a colon", `{"system":"ehr:x","id":"p1","labels":"honeytoken"}`, detect.IngestOptions{}, ""},
		{"system of the request", `{"id":"p1","labels":"honeytoken"}`, detect.IngestOptions{System: "ehr"}, "ehr:p1"},
		{"id with a colon", `{"system":"ehr","id":"x:p1","labels":"honeytoken"}`, detect.IngestOptions{}, "ehr:x:p1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, rep, err := detect.ParseIngest(context.Background(), newIngestTokenizer(t), detect.IngestPatients, detect.ContentNDJSON, strings.NewReader(tt.body+"\n"), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range recs {
				if r.Kind == detect.RecordHoneytoken {
					got = append(got, r.Honeytoken)
				}
			}
			switch {
			case tt.want == "" && (len(got) != 0 || rep.Rejected != 1):
				t.Errorf("decoys %v, %d rejected; want none, the line rejected", got, rep.Rejected)
			case tt.want != "" && (len(got) != 1 || got[0] != tt.want):
				t.Errorf("decoys %v, want [%s]", got, tt.want)
			}
		})
	}
}
