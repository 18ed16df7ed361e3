package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// auditEvent is what the audit pages read of an AuditEvent of the trail
// (auditlog.NewAuditEvent): ids, never PHI.
type auditEvent struct {
	ID       string `json:"id"`
	Action   string `json:"action"`
	Recorded string `json:"recorded"` // the entry's time, RFC 3339 with nanoseconds, as the entry holds it
	Outcome  string `json:"outcome"`
	OutDesc  string `json:"outcomeDesc"`
	Subtype  []struct {
		Code string `json:"code"`
	} `json:"subtype"`
	PurposeOfEvent []struct {
		Coding []struct {
			Code string `json:"code"`
		} `json:"coding"`
	} `json:"purposeOfEvent"`
	Agent []struct {
		Who *struct {
			Identifier *struct {
				Value string `json:"value"`
			} `json:"identifier"`
		} `json:"who"`
		Role []struct {
			Coding []struct {
				Code string `json:"code"`
			} `json:"coding"`
		} `json:"role"`
		Requestor bool `json:"requestor"`
	} `json:"agent"`
	Entity []struct {
		What *struct {
			Reference string `json:"reference"`
		} `json:"what"`
		Role *struct {
			Code string `json:"code"`
		} `json:"role"`
	} `json:"entity"`
}

// auditBundle is a searchset Bundle of AuditEvents.
type auditBundle struct {
	Total int64 `json:"total"`
	Link  []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []struct {
		Resource auditEvent `json:"resource"`
	} `json:"entry"`
}

// auditRow is one entry as the audit pages show it.
type auditRow struct {
	Index    string
	Recorded string // exactly as the entry holds it, for the proof check
	When     string // for people: UTC to the second
	Actor    string // the requesting agent's id, or ""
	Roles    []string
	Action   string // the AuditEvent action code: C, R, U, D or E
	Subtype  string // the FHIR interaction, e.g. read, search-type
	Patients []string
	Targets  []string
	// MorePatients and MoreTargets count those left out of the row.
	MorePatients, MoreTargets int
	Purposes                  []string
	Outcome                   string // "ok", or the refusal's code
}

// rowOf returns the row of ev.
func rowOf(ev auditEvent) auditRow {
	row := auditRow{Index: ev.ID, Recorded: ev.Recorded, When: ev.Recorded, Action: ev.Action, Outcome: "ok"}
	if t, err := parseRecorded(ev.Recorded); err == nil {
		row.When = t.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	if len(ev.Subtype) > 0 {
		row.Subtype = ev.Subtype[0].Code
	}
	if ev.Outcome != "0" {
		row.Outcome = ev.OutDesc
	}
	for _, p := range ev.PurposeOfEvent {
		for _, c := range p.Coding {
			row.Purposes = append(row.Purposes, c.Code)
		}
	}
	for _, a := range ev.Agent {
		if a.Requestor {
			if a.Who != nil && a.Who.Identifier != nil {
				row.Actor = a.Who.Identifier.Value
			}
			for _, r := range a.Role {
				for _, c := range r.Coding {
					row.Roles = append(row.Roles, c.Code)
				}
			}
		}
	}
	for _, e := range ev.Entity {
		if e.What == nil || e.What.Reference == "" {
			continue
		}
		if p, ok := strings.CutPrefix(e.What.Reference, "Patient/"); ok && e.Role != nil && e.Role.Code == "1" {
			row.Patients = append(row.Patients, p)
		} else {
			row.Targets = append(row.Targets, e.What.Reference)
		}
	}
	// An import or a bulk search names hundreds: the row shows the first
	// few and says how many more (the entry itself keeps them all).
	if n := len(row.Patients); n > maxListedPerRow {
		row.Patients, row.MorePatients = row.Patients[:maxListedPerRow], n-maxListedPerRow
	}
	if n := len(row.Targets); n > maxListedPerRow {
		row.Targets, row.MoreTargets = row.Targets[:maxListedPerRow], n-maxListedPerRow
	}
	return row
}

// maxListedPerRow bounds the patients and the targets a row lists.
const maxListedPerRow = 5

// auditActions are the AuditEvent action codes the search filters on.
var auditActions = []struct{ Code, Label string }{
	{"C", "create"}, {"R", "read"}, {"U", "update"}, {"D", "delete"}, {"E", "search or other operation"},
}

// auditPageSize is how many entries a page of the audit search shows.
const auditPageSize = 50

// auditPage is the data of the audit search.
type auditPage struct {
	Agent, Patient, Action, Date string
	Actions                      []struct{ Code, Label string }
	Rows                         []auditRow
	Total                        int64
	Offset                       int
	First, Last                  int    // the ordinal numbers of the first and last entry shown
	Prev, Next                   string // links to the pages before and after, or ""
}

// auditSearch searches the trail: GET /console/audit?agent=&patient=&action=&date=&offset=,
// with the AuditEvent search API, oldest first as it answers.
func (h *Handler) auditSearch(w http.ResponseWriter, r *http.Request, s *session) {
	in := r.URL.Query()
	p := auditPage{Agent: strings.TrimSpace(in.Get("agent")), Patient: strings.TrimSpace(in.Get("patient")),
		Action: in.Get("action"), Date: strings.TrimSpace(in.Get("date")), Actions: auditActions}
	if o := in.Get("offset"); o != "" {
		n, err := strconv.Atoi(o)
		if err != nil || n < 0 {
			h.renderError(w, r, s, http.StatusBadRequest, "The offset must be a number of 0 or more.")
			return
		}
		p.Offset = n
	}
	q := url.Values{}
	for name, v := range map[string]string{"agent": p.Agent, "patient": p.Patient, "action": p.Action, "date": p.Date} {
		if v != "" {
			q.Set(name, v)
		}
	}
	var b auditBundle
	if !in.Has("offset") { // the newest entries first: the last page
		q.Set("_count", "0")
		if err := h.getJSON(r, s, "/fhir/AuditEvent?"+q.Encode(), &b); err != nil {
			h.fail(w, r, s, err)
			return
		}
		p.Offset = int(max(b.Total-auditPageSize, 0))
	}
	q.Set("_count", strconv.Itoa(auditPageSize))
	q.Set("_offset", strconv.Itoa(p.Offset))
	if err := h.getJSON(r, s, "/fhir/AuditEvent?"+q.Encode(), &b); err != nil {
		h.fail(w, r, s, err)
		return
	}
	for _, e := range b.Entry {
		p.Rows = append(p.Rows, rowOf(e.Resource))
	}
	p.Total = b.Total
	p.First, p.Last = p.Offset+1, p.Offset+len(p.Rows)
	page := func(offset int) string {
		v := url.Values{}
		for name, val := range map[string]string{"agent": p.Agent, "patient": p.Patient, "action": p.Action, "date": p.Date} {
			if val != "" {
				v.Set(name, val)
			}
		}
		v.Set("offset", strconv.Itoa(offset))
		return "/console/audit?" + v.Encode()
	}
	if p.Offset > 0 {
		p.Prev = page(max(p.Offset-auditPageSize, 0))
	}
	if int64(p.Offset+len(b.Entry)) < b.Total && len(b.Entry) > 0 {
		p.Next = page(p.Offset + auditPageSize)
	}
	h.render(w, r, s, http.StatusOK, "audit", "Audit trail", p)
}

// auditRoutes registers the audit search and the proof data its
// verify buttons fetch.
func (h *Handler) auditRoutes() {
	h.page("/console/audit", "/console/audit", "Audit", officer, h.auditSearch)
	h.mux.HandleFunc("GET /console/audit/proof", h.with(officer, h.auditProof))
}
