package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/phivault/phivault/detect/simulate"
)

// TestSimulate runs phivault simulate at a small size with three seeds:
// it prints the detector table, the scenarios and the overall AUC, and
// the same seed gives the same report.
func TestSimulate(t *testing.T) {
	size := []string{"-days", "8", "-staff", "70", "-patients", "400"}
	for _, seed := range []string{"1", "2", "3"} {
		var out, errb bytes.Buffer
		args := append([]string{"simulate", "-seed", seed}, size...)
		if err := run(context.Background(), args, &out, &errb); err != nil {
			t.Fatalf("phivault %s = %v; stderr %s", strings.Join(args, " "), err, errb.String())
		}
		for _, want := range []string{"DETECTOR", "PRECISION", "RECALL", "MEDIAN TTD", "honeytoken", "SCENARIO", "celebrity", "ROC AUC", "seed " + seed} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("seed %s: output lacks %q:\n%s", seed, want, out.String())
			}
		}
		var a, b bytes.Buffer
		jsonArgs := append(args, "-json")
		if err := run(context.Background(), jsonArgs, &a, &errb); err != nil {
			t.Fatal(err)
		}
		if err := run(context.Background(), jsonArgs, &b, &errb); err != nil {
			t.Fatal(err)
		}
		var ra, rb simulate.Report
		if err := json.Unmarshal(a.Bytes(), &ra); err != nil {
			t.Fatalf("seed %s: -json output: %v", seed, err)
		}
		if err := json.Unmarshal(b.Bytes(), &rb); err != nil {
			t.Fatal(err)
		}
		if strconv.FormatUint(ra.Seed, 10) != seed || ra.Events == 0 || len(ra.Detectors) == 0 || len(ra.ByScenario) != len(simulate.ScenarioNames()) {
			t.Errorf("seed %s: report seed %d, %d events, %d detectors, %d scenarios", seed, ra.Seed, ra.Events, len(ra.Detectors), len(ra.ByScenario))
		}
		ra.Elapsed, rb.Elapsed = 0, 0
		ja, _ := json.Marshal(ra)
		jb, _ := json.Marshal(rb)
		if !bytes.Equal(ja, jb) {
			t.Errorf("seed %s: two runs gave different reports", seed)
		}
	}
}

func TestSimulate_scenarios(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"simulate", "-days", "6", "-staff", "60", "-patients", "300", "-scenarios", "honeytoken, self", "-json", "-fp", "3"}
	if err := run(context.Background(), args, &out, &errb); err != nil {
		t.Fatal(err)
	}
	var rep simulate.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if strings.Join(rep.Scenarios, ",") != "honeytoken,self" {
		t.Errorf("scenarios %v, want [honeytoken self]", rep.Scenarios)
	}
}

func TestSimulate_errors(t *testing.T) {
	tests := [][]string{
		{"-scenarios", "no-such-thing"},
		{"-days", "0"},
		{"-days", "1000"},
		{"extra"},
		{"-seed", "minus-one"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		args := append([]string{"simulate"}, tt...)
		if err := run(context.Background(), args, &out, &errb); err == nil {
			t.Errorf("phivault %s = nil, want an error", strings.Join(args, " "))
		}
	}
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"simulate", "-h"}, &out, &errb); err != nil || !strings.Contains(out.String(), "Usage: phivault simulate") || errb.Len() > 0 {
		t.Errorf("simulate -h = %v, stdout %q, stderr %q; want the usage on stdout", err, out.String(), errb.String())
	}
}
