package incident

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/incident/notice"
)

// Headers of the answer to POST /security/incidents/{id}/notices: the
// counts of its summary (notice.Summary), ids and numbers only.
const (
	HeaderLetters    = "Phivault-Notice-Letters"
	HeaderSubstitute = "Phivault-Notice-Substitute"
	HeaderDeceased   = "Phivault-Notice-Deceased"
	HeaderDecoys     = "Phivault-Notice-Decoys"
)

// notices serves POST /security/incidents/{id}/notices: the individual
// notice letters (format pdf), their mailing list (csv) or the notice to
// the Secretary (hhs-csv) of a breach, as a file to save. For privacy
// officers only, and only people (staff, not system clients): neither a
// security admin nor the operator, as the letters hold the patients' names
// and addresses, decrypted for this answer alone, after an audit entry
// naming every patient.
func (h *handler) notices(w http.ResponseWriter, r *http.Request) {
	a := h.opts.API
	id := r.PathValue("id")
	e := a.Entry(r, phivault.ActionExport, TargetType, safeID(id))
	p := phivault.PrincipalFromContext(r.Context())
	if p == nil || p.Kind != phivault.PrincipalStaff || !p.HasRole(phivault.RolePrivacyOfficer) {
		a.Refuse(w, r, e, phivault.Errorf(phivault.EFORBIDDEN, "Breach notices are for privacy officers."))
		return
	}
	var req notice.Request
	if err := decode(r, &req); err != nil {
		a.Refuse(w, r, e, err)
		return
	}
	if err := req.Validate(); err != nil {
		a.Refuse(w, r, e, err)
		return
	}
	e.Decision = "breach notices " + req.Format
	if h.opts.Trail == nil || h.opts.Addressees == nil {
		a.Refuse(w, r, e, phivault.Errorf(phivault.EUNAVAILABLE, "This server cannot write breach notices."))
		return
	}
	ctx := r.Context()
	x, breach, err := h.opts.Service.Expose(ctx, id, h.opts.Trail)
	if err != nil {
		a.Refuse(w, r, e, err)
		return
	}
	patients := x.Patients()
	if len(patients) == 0 {
		a.Refuse(w, r, e, phivault.Errorf(phivault.EINVALID, "No record left to the incident's scope within its window: there is nobody to notify."))
		return
	}
	decoys, err := h.opts.Addressees.Decoys(ctx)
	if err != nil {
		a.Refuse(w, r, e, err)
		return
	}
	// The entry names every patient before any name or address is
	// decrypted: if it cannot be written, nothing is read.
	e.Compartments = vaultPatients(patients)
	e.Returned = []string{TargetType + "/" + id}
	if !a.Record(w, r, e) {
		return
	}
	refuse := func(err error) {
		fail := a.Entry(r, phivault.ActionExport, TargetType, safeID(id))
		fail.Decision = e.Decision
		a.Refuse(w, r, fail, err)
	}
	now := h.opts.Service.Now()
	sum, letters, byState, err := h.addressees(ctx, &req, breach, x, patients, decoys, now)
	if err != nil {
		refuse(err)
		return
	}
	var body bytes.Buffer
	ctype := "text/csv; charset=utf-8"
	switch req.Format {
	case notice.FormatHHS:
		rep := &notice.HHSReport{Request: &req, Breach: breach, Summary: sum, Generated: now}
		for st, n := range byState {
			if st != "" && n > MediaThreshold {
				rep.MediaStates = append(rep.MediaStates, st)
			}
		}
		slices.Sort(rep.MediaStates)
		err = notice.WriteHHS(&body, rep)
	case notice.FormatPDF:
		ctype, err = "application/pdf", notice.WritePDF(&body, letters, now)
	default:
		err = notice.WriteMailing(&body, letters)
	}
	if err != nil {
		refuse(err)
		return
	}
	ext := map[string]string{notice.FormatPDF: "pdf", notice.FormatCSV: "csv", notice.FormatHHS: "csv"}[req.Format]
	name := fmt.Sprintf("%s-%s.%s", map[bool]string{true: "hhs", false: "notices"}[req.Format == notice.FormatHHS], safeID(id), ext)
	hd := w.Header()
	hd.Set("Content-Type", ctype)
	hd.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set(HeaderLetters, strconv.Itoa(sum.Letters))
	hd.Set(HeaderSubstitute, strconv.Itoa(sum.Substitute))
	hd.Set(HeaderDeceased, strconv.Itoa(sum.Deceased))
	hd.Set(HeaderDecoys, strconv.Itoa(sum.Decoys))
	hd.Set("Content-Length", strconv.Itoa(body.Len()))
	w.WriteHeader(http.StatusOK)
	w.Write(body.Bytes())
}

// addressees reads each patient's addressee, in the order of patients,
// and writes their letter unless req is for the HHS report; it counts
// the individuals by how they are reached, and by state of residence. A
// patient who cannot be written to is counted, never an error that stops
// the rest.
func (h *handler) addressees(ctx context.Context, req *notice.Request, b notice.Breach, x *Exposure, patients, decoys []string, date time.Time) (notice.Summary, []*notice.Letter, map[string]int, error) {
	var (
		sum     notice.Summary
		letters []*notice.Letter
		byState = map[string]int{}
	)
	for _, p := range patients {
		if slices.Contains(decoys, p) {
			sum.Decoys++
			continue
		}
		ad := notice.Addressee{Status: notice.StatusNoAddress}
		if !strings.Contains(p, ":") { // another system's patient has no record here
			var err error
			if ad, err = h.opts.Addressees.Addressee(ctx, p); err != nil {
				return sum, nil, nil, err
			}
			ad = ad.Check()
		}
		if ad.Status != notice.StatusDecoy {
			byState[strings.ToUpper(strings.TrimSpace(ad.Address.State))]++
		}
		switch ad.Status {
		case notice.StatusMail:
			sum.Letters++
			if req.Format != notice.FormatHHS {
				ref := fmt.Sprintf("%s-%04d", strings.TrimPrefix(b.Incident, "inc-")[:8], sum.Letters)
				letters = append(letters, notice.Compose(b, x.Kinds[p], ad, req, date, ref))
			}
		case notice.StatusDeceased:
			sum.Deceased++
		case notice.StatusDecoy:
			sum.Decoys++
		default:
			sum.Substitute++
		}
	}
	return sum, letters, byState, nil
}
