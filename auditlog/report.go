package auditlog

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/phivault/phivault"
)

// reportBatch is how many entries a report reads at a time.
const reportBatch = 500

// Report is an access report: every entry of the trail that matches Query
// (paging fields ignored), oldest first. With Query.Patient set it is the
// patient's accounting of disclosures (HIPAA 164.528): when, who, what and
// why for every access to their compartment; with Query.Actor set it is
// that user's activity report. It reads the audit store only and holds ids,
// never PHI. The index must be caught up first (see CatchUpIndex).
type Report struct {
	Store IndexStorage
	Query Query
}

// each calls fn with every matching entry, oldest first, reading the
// store a batch at a time.
func (rep *Report) each(ctx context.Context, fn func(idx int64, e *phivault.AuditEntry) error) error {
	q := rep.Query
	q.Limit = reportBatch
	for q.Offset = 0; ; q.Offset += reportBatch {
		idxs, _, err := rep.Store.SearchAudit(ctx, q)
		if err != nil {
			return fmt.Errorf("auditlog: report: %w", err)
		}
		for _, idx := range idxs {
			data, err := rep.Store.ReadAuditEntries(ctx, idx, idx+1)
			if err != nil {
				return fmt.Errorf("auditlog: report: %w", err)
			}
			if len(data) != 1 || data[0] == nil {
				return fmt.Errorf("auditlog: report: entry %d is missing", idx)
			}
			e, err := Decode(data[0])
			if err != nil {
				return fmt.Errorf("auditlog: report: entry %d: %w", idx, err)
			}
			if !q.matches(e) {
				continue
			}
			if q.Patient != "" {
				e = forPatient(e, q.Patient)
			}
			if err := fn(idx, e); err != nil {
				return err
			}
		}
		if len(idxs) < reportBatch {
			return nil
		}
	}
}

// forPatient returns e as patient p's access report shows it: nothing of
// any other patient. An entry that touched several compartments (a search
// or a Bundle across patients) keeps who, when, what kind and why, but not
// the other patients' ids nor the resource ids, which the entry does not
// attribute to compartments.
//
// A refusal that an incident's restriction of the compartment decided
// (restrict-compartment) shows as a refusal without naming its policy:
// the report must not tell the patient that their compartment is
// restricted. The trail itself keeps the policy.
func forPatient(e *phivault.AuditEntry, p string) *phivault.AuditEntry {
	if strings.Contains(e.Decision, restrictedPolicy) {
		cp := *e
		cp.Decision = "deny"
		e = &cp
	}
	if len(e.Compartments) <= 1 {
		return e
	}
	cp := *e
	cp.Compartments = []string{p}
	cp.Returned = nil
	cp.TargetID, cp.TargetVersion = "", 0
	return &cp
}

// restrictedPolicy is the Cedar policy of restrict-compartment
// (policy/containment.cedar).
const restrictedPolicy = "forbid-restricted-compartment"

// CSVHeader is the first row of a CSV report. Multi-valued columns
// (patients, returned, search_params, roles) hold values separated by
// spaces.
var CSVHeader = []string{
	"index", "time", "actor", "roles", "client", "source", "action", "fhir_action", "outcome",
	"resource_type", "resource_id", "version", "patients", "returned", "search_params", "purpose", "request_id",
}

// WriteCSV writes the report as CSV with the CSVHeader columns, one row per
// entry. Cells that a spreadsheet would take for a formula are prefixed
// with a quote.
func (rep *Report) WriteCSV(ctx context.Context, w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(CSVHeader)
	err := rep.each(ctx, func(idx int64, e *phivault.AuditEntry) error {
		action, _ := fhirAction(e)
		version := ""
		if e.TargetVersion > 0 {
			version = strconv.FormatInt(e.TargetVersion, 10)
		}
		row := []string{
			strconv.FormatInt(idx, 10), e.Time.UTC().Format(time.RFC3339Nano), e.Actor, strings.Join(e.Roles, " "),
			e.Client, e.Source, e.Action, action, e.Outcome, e.TargetType, e.TargetID, version,
			strings.Join(e.Compartments, " "), strings.Join(e.Returned, " "), strings.Join(e.SearchParams, " "),
			e.Purpose, e.RequestID,
		}
		for i, c := range row {
			row[i] = csvSafe(c)
		}
		return cw.Write(row)
	})
	cw.Flush()
	if err != nil {
		return err
	}
	return cw.Error()
}

// csvSafe defuses cells that spreadsheets would evaluate as formulas.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// WriteBundle writes the report as a FHIR searchset Bundle of AuditEvents,
// streamed entry by entry; base is the FHIR base URL for fullUrls.
func (rep *Report) WriteBundle(ctx context.Context, w io.Writer, base string) error {
	total, err := rep.count(ctx)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","total":%d`, total); err != nil {
		return err
	}
	first := true // FHIR allows no empty arrays: "entry" starts with the first
	err = rep.each(ctx, func(idx int64, e *phivault.AuditEntry) error {
		ev := NewAuditEvent(idx, e)
		b, err := json.Marshal(bundleEntry{FullURL: base + "/AuditEvent/" + ev.ID, Resource: ev, Search: &searchMode{"match"}})
		if err != nil {
			return err
		}
		if first {
			b = append([]byte(`,"entry":[`), b...)
		} else {
			b = append([]byte{','}, b...)
		}
		first = false
		_, err = w.Write(b)
		return err
	})
	if err != nil {
		return err
	}
	end := "}\n"
	if !first {
		end = "]}\n"
	}
	_, err = io.WriteString(w, end)
	return err
}

func (rep *Report) count(ctx context.Context) (int64, error) {
	q := rep.Query
	q.Limit, q.Offset = 0, 0
	_, total, err := rep.Store.SearchAudit(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("auditlog: report: %w", err)
	}
	return total, nil
}
