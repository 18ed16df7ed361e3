package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/phivault/phivault"
)

// vaultResidences reads patients' state of residence from their Patient
// records, below access and audit: it serves the breach report, whose
// route records one entry naming every patient read.
type vaultResidences struct {
	records phivault.RecordService
}

// States implements incident.Residences. A patient whose record is gone
// (deleted, shredded) has an unknown residence.
func (v vaultResidences) States(ctx context.Context, patients []string) (map[string]string, error) {
	out := make(map[string]string, len(patients))
	for _, id := range patients {
		r, err := v.records.Read(ctx, "Patient", id)
		switch {
		case errors.Is(err, phivault.ErrNotFound), phivault.ErrorCode(err) == phivault.EGONE, phivault.ErrorCode(err) == phivault.ENOTFOUND:
			out[id] = ""
			continue
		case err != nil:
			return nil, err
		}
		out[id] = residenceState(r.Body)
	}
	return out, nil
}

// residenceState returns the state of a Patient's current home address
// (else of its first address with a state), upper-cased; "" if none.
func residenceState(body []byte) string {
	var p struct {
		Address []struct {
			Use    string `json:"use"`
			State  string `json:"state"`
			Period *struct {
				End string `json:"end"`
			} `json:"period"`
		} `json:"address"`
	}
	if json.Unmarshal(body, &p) != nil {
		return ""
	}
	first := ""
	for _, a := range p.Address {
		st := strings.ToUpper(strings.TrimSpace(a.State))
		if st == "" || len(st) > 64 {
			continue
		}
		if a.Use == "home" && (a.Period == nil || a.Period.End == "") {
			return st
		}
		if first == "" && a.Use != "old" {
			first = st
		}
	}
	return first
}
