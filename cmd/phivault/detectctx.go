package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/access"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/fhir"
)

// detectContext keeps the detectors' directory current with the vault's
// own records and accounts (detect.Loader): users from the accounts,
// patients (labels, deceased, department, and their names, addresses and
// phones as comparison tokens), and care relationships from CareTeam,
// Encounter, EpisodeOfCare, Appointment and ServiceRequest. It reads the
// vault below the access layer, as the vault's own maintenance does; what
// it keeps is ids and tokens only.
type detectContext struct {
	records  phivault.RecordService // the vault itself, below access and audit
	accounts phivault.AccountStore
	tokens   detect.Tokenizer
	// persons are the comparison tokens of Practitioners, for the users
	// linked to them.
	persons map[string]detect.Person
}

// contextRecordTypes are the resource types the directory is read from.
var contextRecordTypes = []string{"Practitioner", "Patient", "CareTeam", "Encounter", "EpisodeOfCare", "Appointment", "ServiceRequest"}

// contextPage is how many resources one search page of Load reads.
const contextPage = 500

// Load implements detect.Loader.
func (c *detectContext) Load(ctx context.Context, dir *detect.Directory) error {
	c.persons = map[string]detect.Person{}
	for _, typ := range contextRecordTypes {
		for offset := 0; ; offset += contextPage {
			res, err := c.records.Search(ctx, &phivault.Query{Type: typ, Count: contextPage, Offset: offset, Sorted: true, SortAsc: true})
			if err != nil {
				return fmt.Errorf("read %s: %w", typ, err)
			}
			for _, r := range res.Matches {
				if err := c.apply(ctx, dir, r); err != nil {
					return err
				}
			}
			if len(res.Matches) < contextPage {
				break
			}
		}
	}
	list, err := phivault.ListAccounts(ctx, c.accounts)
	if err != nil {
		return fmt.Errorf("read accounts: %w", err)
	}
	for _, s := range list {
		c.putAccount(dir, s.Account)
	}
	return nil
}

// Refresh implements detect.Loader: after a write of a context record it
// reads that record again; after an account change, that account.
func (c *detectContext) Refresh(ctx context.Context, dir *detect.Directory, ev *detect.Event) error {
	if !ev.OK {
		return nil
	}
	switch ev.Action {
	case phivault.ActionAccountChange:
		if ev.ResourceID == "" {
			return nil
		}
		a, err := c.accounts.AccountByID(ctx, ev.ResourceID)
		if err != nil {
			return nil // a client, or gone: nothing to refresh
		}
		c.putAccount(dir, a)
		return nil
	case phivault.ActionCreate, phivault.ActionUpdate, phivault.ActionDelete, phivault.ActionBundle:
	default:
		return nil
	}
	refs := ev.Returned
	if len(refs) == 0 && ev.ResourceType != "" && ev.ResourceID != "" {
		refs = []string{ev.ResourceType + "/" + ev.ResourceID}
	}
	for _, ref := range refs {
		typ, id, ok := fhir.LocalRef(ref)
		if !ok || !slices.Contains(contextRecordTypes, typ) {
			continue
		}
		r, err := c.records.Read(ctx, typ, id)
		switch phivault.ErrorCode(err) {
		case "":
		case phivault.EGONE, phivault.ENOTFOUND:
			dir.SetRelationships(typ+"/"+id, nil)
			continue
		default:
			return fmt.Errorf("read %s: %w", typ, err)
		}
		if err := c.apply(ctx, dir, r); err != nil {
			return err
		}
	}
	return nil
}

// putAccount puts account a into dir as a user.
func (c *detectContext) putAccount(dir *detect.Directory, a *phivault.Account) {
	u := &detect.User{ID: a.ID, Roles: a.Roles, Department: a.Department, Practitioner: a.PractitionerID, Patient: a.PatientID, Status: a.Status}
	if a.Kind == phivault.PrincipalPatient {
		u.Roles = append(slices.Clip(u.Roles), detect.PatientRole)
	} else if a.PatientID != "" {
		// A staff member who is also a patient: their record is an
		// employee's.
		if p := dir.Patient(a.PatientID); p != nil && p.Employee != a.ID {
			cp := *p
			cp.Employee = a.ID
			dir.PutPatient(&cp)
		}
	}
	if a.PractitionerID != "" {
		u.Person = c.persons[a.PractitionerID]
	}
	dir.PutUser(u)
}

// apply reads one context record into dir.
func (c *detectContext) apply(ctx context.Context, dir *detect.Directory, r *phivault.Resource) error {
	obj, err := fhir.Decode(r.Body)
	if err != nil {
		return fmt.Errorf("decode %s: %w", r.Type, err)
	}
	origin := r.Type + "/" + r.ID
	switch r.Type {
	case "Practitioner":
		person, err := detect.PersonTokens(ctx, c.tokens, detect.PersonDataOf(obj))
		if err != nil {
			return err
		}
		c.persons[r.ID] = person
		if uid := dir.UserOfPractitioner(r.ID); uid != "" {
			if u := dir.User(uid); u != nil {
				cp := *u
				cp.Person = person
				dir.PutUser(&cp)
			}
		}
	case "Patient":
		person, err := detect.PersonTokens(ctx, c.tokens, detect.PersonDataOf(obj))
		if err != nil {
			return err
		}
		p := &detect.Patient{ID: r.ID, Labels: access.Labels(obj), Deceased: deceased(obj), Person: person}
		if hasSecurityCode(obj, detect.LabelEmployee) { // not a label the policies act on, but one the detectors do
			p.Labels = append(p.Labels, detect.LabelEmployee)
		}
		if ref, _ := obj["managingOrganization"].(map[string]any); ref != nil {
			if s, _ := ref["reference"].(string); s != "" {
				if t, id, ok := fhir.LocalRef(s); ok && t == "Organization" {
					p.Department = id
				}
			}
		}
		if old := dir.Patient(r.ID); old != nil {
			p.Employee = old.Employee
		}
		dir.PutPatient(p)
	default:
		if r.Compartment == "" {
			dir.SetRelationships(origin, nil)
			return nil
		}
		dir.SetRelationships(origin, relationships(r.Type, r.Compartment, obj))
	}
	return nil
}

// relationships returns the care relationships a record states about
// patient: whom it names, for which period.
func relationships(typ, patient string, obj map[string]any) []detect.Relationship {
	status, _ := obj["status"].(string)
	if status == "entered-in-error" || status == "cancelled" {
		return nil
	}
	var out []detect.Relationship
	add := func(ref any, kind string, start, end time.Time) {
		if who := access.CareMember(ref); who != "" {
			out = append(out, detect.Relationship{User: who, Patient: patient, Kind: kind, Start: start, End: end})
		}
	}
	switch typ {
	case "CareTeam":
		if status == "inactive" {
			return nil
		}
		ts, te := period(obj["period"])
		for _, part := range maps(obj["participant"]) {
			s, e := period(part["period"])
			add(part["member"], detect.KindCareTeam, later(ts, s), earlier(te, e))
		}
	case "Encounter":
		s, e := period(obj["period"])
		for _, part := range maps(obj["participant"]) {
			add(part["individual"], detect.KindEncounter, s, e)
		}
	case "EpisodeOfCare":
		// EpisodeOfCare.team is not followed: as the access layer reads
		// it (access.RecordService's patient context), a named CareTeam
		// counts only if it is in the patient's own compartment, and
		// there it is read as a CareTeam of its own. Following it here
		// would let an episode borrow another patient's team.
		s, e := period(obj["period"])
		add(obj["careManager"], detect.KindEpisode, s, e)
	case "Appointment":
		if status == "noshow" {
			return nil
		}
		s, e := instant(obj["start"]), until(obj["end"])
		for _, part := range maps(obj["participant"]) {
			add(part["actor"], detect.KindAppointment, s, e)
		}
	case "ServiceRequest":
		at := instant(obj["authoredOn"])
		add(obj["requester"], detect.KindOrder, at, at)
		for _, p := range maps(obj["performer"]) {
			add(p, detect.KindOrder, at, at)
		}
	}
	return out
}

// hasSecurityCode reports whether obj's meta.security holds code.
func hasSecurityCode(obj map[string]any, code string) bool {
	meta, _ := obj["meta"].(map[string]any)
	for _, c := range maps(meta["security"]) {
		if s, _ := c["code"].(string); s == code {
			return true
		}
	}
	return false
}

// deceased reports whether a Patient is deceased: deceasedBoolean true or
// a deceasedDateTime.
func deceased(obj map[string]any) bool {
	if b, _ := obj["deceasedBoolean"].(bool); b {
		return true
	}
	s, _ := obj["deceasedDateTime"].(string)
	return s != ""
}

func maps(v any) []map[string]any {
	list, _ := v.([]any)
	out := make([]map[string]any, 0, len(list))
	for _, x := range list {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// period returns the start and end of a FHIR Period, zero where absent or
// unreadable; the end is the end of its precision ("2026-12-02" ends at
// midnight after that day).
func period(v any) (start, end time.Time) {
	m, _ := v.(map[string]any)
	return instant(m["start"]), until(m["end"])
}

// instant returns the start of a FHIR date or dateTime, or zero.
func instant(v any) time.Time {
	s, _ := v.(string)
	from, _, err := fhir.DateSpan(s)
	if err != nil {
		return time.Time{}
	}
	return from
}

// until returns the end of a FHIR date or dateTime's precision, or zero.
func until(v any) time.Time {
	s, _ := v.(string)
	_, to, err := fhir.DateSpan(s)
	if err != nil {
		return time.Time{}
	}
	return to
}

// later returns the later of two starts (zero is open).
func later(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.After(a)) {
		return b
	}
	return a
}

// earlier returns the earlier of two ends (zero is open).
func earlier(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
