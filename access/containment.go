package access

import (
	"context"
	"encoding/json"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// ContainmentSystem is the code system of the Basic resources that record
// an incident's containment controls, each naming the incident action
// (Target.ID of incident.Action) that made it:
//
//   - code "restrict-compartment", in the patient's compartment: the
//     compartment is behind break-the-glass (see Restrict). Being in the
//     compartment, it is sealed under the patient's key, read with the rest
//     of the patient's access context, and shredded with the patient.
//   - code "raise-detail", outside every compartment: a user's search
//     values are recorded as keyed tokens (see RaiseDetail).
//
// Like break-the-glass records, only those who may read the audit trail
// see them (the patient does not: no tell in their own record), and
// nobody writes them through the FHIR API.
const ContainmentSystem = "urn:phivault:containment"

// Codes and extension URLs of containment records.
const (
	codeRestrict    = "restrict-compartment"
	codeRaiseDetail = "raise-detail"
	extAction       = ContainmentSystem + ":action"
	extUser         = ContainmentSystem + ":user"
	extDetailUntil  = ContainmentSystem + ":until"
)

// restrictionQuery selects the restriction records of patient's
// compartment.
func restrictionQuery(patient string) *phivault.Query {
	return &phivault.Query{Type: "Basic", Compartments: []string{patient},
		Params: []phivault.QueryParam{{Name: "code", Values: []string{ContainmentSystem + "|" + codeRestrict}}}}
}

// detailQuery selects the raise-detail records.
func detailQuery() *phivault.Query {
	return &phivault.Query{Type: "Basic", SortAsc: true, Sorted: true,
		Params: []phivault.QueryParam{{Name: "code", Values: []string{ContainmentSystem + "|" + codeRaiseDetail}}}}
}

var errContainmentIDs = phivault.Errorf(phivault.EINVALID, "A containment control needs an action id and a target id.")

// Restrict puts patientID's compartment behind break-the-glass for
// incident action actionID: until Lift, no ordinary grant (care team,
// department, role, SMART scope) opens any of its records to anyone but
// the patient, and only an active break-the-glass grant lets staff read
// them; nobody writes them. The restriction is a record stored in the
// compartment (see ContainmentSystem), so the one decision path reads it
// like consents and labels, from what is stored; this node sees it at
// once, other nodes within ContextTTL. Restricting again for the same
// action does nothing. The caller records the change in the audit trail
// first.
func (s *RecordService) Restrict(ctx context.Context, patientID, actionID string) error {
	if !fhir.IsID(patientID) || actionID == "" {
		return errContainmentIDs
	}
	defer s.cache.invalidate(patientID)
	have, err := s.containment(ctx, restrictionQuery(patientID), actionID)
	if err != nil || len(have) > 0 {
		return err
	}
	return s.putContainment(ctx, codeRestrict, actionID, map[string]any{
		"subject": map[string]any{"reference": "Patient/" + patientID},
	})
}

// Lift ends the restriction of patientID's compartment made by action
// actionID; restrictions by other actions stay. Lifting one that is not
// there does nothing.
func (s *RecordService) Lift(ctx context.Context, patientID, actionID string) error {
	if !fhir.IsID(patientID) || actionID == "" {
		return errContainmentIDs
	}
	defer s.cache.invalidate(patientID)
	return s.deleteContainment(ctx, restrictionQuery(patientID), actionID)
}

// Restricted reports whether patientID's compartment is restricted, as the
// access decisions see it now.
func (s *RecordService) Restricted(ctx context.Context, patientID string) (bool, error) {
	info, err := s.patientInfo(ctx, patientID)
	if err != nil {
		return false, err
	}
	return info.restricted, nil
}

// Watch is a raised-detail record: the search values of User are
// recorded as keyed tokens until Until (zero: until lowered), for
// incident action Action.
type Watch struct {
	User   string
	Action string
	Until  time.Time
}

// RaiseDetail stores w. Raising again for the same action does nothing.
// The caller records the change in the audit trail first.
func (s *RecordService) RaiseDetail(ctx context.Context, w Watch) error {
	if w.User == "" || w.Action == "" {
		return errContainmentIDs
	}
	have, err := s.containment(ctx, detailQuery(), w.Action)
	if err != nil || len(have) > 0 {
		return err
	}
	exts := []any{ext(extUser, "valueString", w.User)}
	if !w.Until.IsZero() {
		exts = append(exts, ext(extDetailUntil, "valueDateTime", w.Until.UTC().Format(time.RFC3339)))
	}
	return s.putContainment(ctx, codeRaiseDetail, w.Action, map[string]any{"extension": exts})
}

// LowerDetail deletes the raised-detail record of action actionID.
func (s *RecordService) LowerDetail(ctx context.Context, actionID string) error {
	if actionID == "" {
		return errContainmentIDs
	}
	return s.deleteContainment(ctx, detailQuery(), actionID)
}

// Watches returns the stored raised-detail records, expired ones
// included (the caller compares Until with its clock).
func (s *RecordService) Watches(ctx context.Context) ([]Watch, error) {
	var out []Watch
	err := s.scan(ctx, detailQuery(), func(r *phivault.Resource) error {
		c, err := containmentOf(r)
		if err != nil {
			return err
		}
		out = append(out, Watch{User: c.user, Action: c.action, Until: c.until})
		return nil
	})
	return out, err
}

type containment struct {
	id, action, user string
	until            time.Time
}

// containmentOf reads a containment record.
func containmentOf(r *phivault.Resource) (containment, error) {
	obj, err := fhir.Decode(r.Body)
	if err != nil {
		return containment{}, err
	}
	c := containment{id: r.ID}
	for _, x := range list(obj["extension"]) {
		url, _ := x["url"].(string)
		switch url {
		case extAction:
			c.action, _ = x["valueString"].(string)
		case extUser:
			c.user, _ = x["valueString"].(string)
		case extDetailUntil:
			v, _ := x["valueDateTime"].(string)
			c.until, _ = time.Parse(time.RFC3339, v)
		}
	}
	return c, nil
}

// containment returns the records q matches that action made.
func (s *RecordService) containment(ctx context.Context, q *phivault.Query, action string) ([]containment, error) {
	var out []containment
	err := s.scan(ctx, q, func(r *phivault.Resource) error {
		c, err := containmentOf(r)
		if err == nil && c.action == action {
			out = append(out, c)
		}
		return err
	})
	return out, err
}

// putContainment stores a containment record with code for action; rec
// holds its other elements (subject, extensions).
func (s *RecordService) putContainment(ctx context.Context, code, action string, rec map[string]any) error {
	rec["resourceType"] = "Basic"
	rec["code"] = map[string]any{"coding": []any{map[string]any{"system": ContainmentSystem, "code": code}}}
	rec["created"] = s.Now().UTC().Format("2006-01-02")
	exts, _ := rec["extension"].([]any)
	rec["extension"] = append([]any{ext(extAction, "valueString", action)}, exts...)
	body, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, _, err = s.next.Create(ownWrite(ctx), "Basic", body, phivault.CreateOptions{})
	return err
}

// deleteContainment deletes the records q matches that action made.
func (s *RecordService) deleteContainment(ctx context.Context, q *phivault.Query, action string) error {
	have, err := s.containment(ctx, q, action)
	if err != nil {
		return err
	}
	for _, c := range have {
		if err := s.next.Delete(ownWrite(ctx), "Basic", c.id); err != nil && phivault.ErrorCode(err) != phivault.EGONE {
			return err
		}
	}
	return nil
}
