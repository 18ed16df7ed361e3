package access

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/policy"
	"github.com/phivault/phivault/smart"
)

// Bundle authorizes every entry of a batch or transaction before passing
// the Bundle on; if any entry is refused, nothing runs and the error names
// the entry. Each POST is decided as a create and each PUT as an update
// (or create) in the compartment its resource names, after urn:uuid
// references to Patients of the same Bundle and conditional references
// (Patient?identifier=...) are resolved; each DELETE as a delete of the
// stored resource. GET entries are refused except for system clients:
// their answers would leave unfiltered (send reads as separate requests).
func (s *RecordService) Bundle(ctx context.Context, body []byte, base string) (*phivault.BundleResult, error) {
	c, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	obj, err := fhir.Decode(body)
	if err != nil {
		return nil, err
	}
	entries, _ := obj["entry"].([]any)
	// Patients created or put in this Bundle, by fullUrl.
	newPatients := map[string]*target{}
	for _, raw := range entries {
		e, _ := raw.(map[string]any)
		req, _ := e["request"].(map[string]any)
		res, _ := e["resource"].(map[string]any)
		full, _ := e["fullUrl"].(string)
		if rt, _ := res["resourceType"].(string); rt != "Patient" || full == "" {
			continue
		}
		if m, _ := req["method"].(string); m == http.MethodPost {
			newPatients[full] = s.newTarget("Patient", "", res)
		} else if id, _ := res["id"].(string); id != "" {
			newPatients[full] = &target{typ: "Patient", id: id, compartment: id}
		}
	}
	var touched []string
	clearAll := false
	var tl tally
	for i, raw := range entries {
		e, _ := raw.(map[string]any)
		req, _ := e["request"].(map[string]any)
		method, _ := req["method"].(string)
		u, _ := req["url"].(string)
		typ, id, _ := strings.Cut(strings.TrimPrefix(strings.SplitN(u, "?", 2)[0], "/"), "/")
		res, _ := e["resource"].(map[string]any)
		refuse := func(err error) error {
			if c.note != nil {
				c.note.SetDecision(fmt.Sprintf("deny: bundle entry %d", i))
			}
			return &phivault.Error{Code: phivault.ErrorCode(err), Message: fmt.Sprintf("Bundle entry %d: %s Nothing was run.", i, phivault.ErrorMessage(err))}
		}
		switch method {
		case http.MethodGet, http.MethodHead:
			if c.p.Kind != phivault.PrincipalSystem {
				return nil, refuse(phivault.Errorf(phivault.EFORBIDDEN, "reads inside a Bundle are open to system clients only; send them as separate requests."))
			}
			if err := checkScope(c, readOf(id), typ); err != nil {
				return nil, refuse(err)
			}
		case http.MethodPost, http.MethodPut:
			if res == nil {
				continue // the vault rejects it
			}
			t, err := s.bundleTarget(ctx, typ, id, method, res, newPatients)
			if err != nil {
				return nil, refuse(err)
			}
			action := policy.Create
			if method == http.MethodPut {
				old, err := s.current(ctx, typ, id)
				if err != nil {
					return nil, err
				}
				if old != nil {
					action = policy.Update
					if err := s.authorizeExisting(ctx, c, policy.Update, old); err != nil {
						return nil, refuse(err)
					}
					touched = append(touched, old.Compartment)
				}
			}
			d, err := s.decide(ctx, c, action, t)
			if err != nil {
				return nil, err
			}
			tl.add(d)
			if !d.Allow {
				return nil, refuse(phivault.Errorf(phivault.EFORBIDDEN, "you may not %s this %s.", action, typ))
			}
			if t.newPatient != nil {
				clearAll = clearAll || isContextType(typ)
			}
			if isContextType(typ) {
				touched = append(touched, t.compartment)
			}
		case http.MethodDelete:
			old, err := s.current(ctx, typ, id)
			if err != nil {
				return nil, err
			}
			if old == nil {
				continue
			}
			if err := s.authorizeExisting(ctx, c, policy.Delete, old); err != nil {
				return nil, refuse(err)
			}
			if isContextType(typ) {
				touched = append(touched, old.Compartment)
			}
		default:
			if method != "" {
				return nil, refuse(phivault.Errorf(phivault.EUNSUPPORTED, "this request method is not supported in Bundles."))
			}
		}
	}
	tl.note(c)
	out, err := s.next.Bundle(ctx, body, base)
	// Invalidate even on error: a batch may have written some entries.
	if clearAll {
		s.cache.invalidate()
	} else {
		s.touched("Patient", touched...)
	}
	return out, err
}

func isContextType(typ string) bool {
	for _, t := range contextTypes {
		if t == typ {
			return true
		}
	}
	return false
}

// readOf is the SMART interaction of a GET entry.
func readOf(id string) smart.Interactions {
	if id == "" {
		return smart.Search
	}
	return smart.Read
}

// bundleTarget describes the resource of a POST or PUT entry, with
// references to the Bundle's own Patients and conditional Patient
// references resolved for the compartment.
func (s *RecordService) bundleTarget(ctx context.Context, typ, id, method string, res map[string]any, newPatients map[string]*target) (*target, error) {
	if typ == "Patient" {
		if method == http.MethodPost {
			return s.newTarget("Patient", "", res), nil
		}
		return s.newTarget("Patient", id, res), nil
	}
	var pending *target
	var resolveErr error
	obj := deepCopy(res)
	fhir.RewriteReferences(obj, func(ref string) string {
		if p, ok := newPatients[ref]; ok {
			if p.newPatient != nil {
				pending = p
				return "Patient/bundle-new-patient"
			}
			return "Patient/" + p.id
		}
		if q, ok := strings.CutPrefix(ref, "Patient?"); ok {
			pid, err := s.resolvePatient(ctx, q)
			if err != nil {
				resolveErr = err
				return ref
			}
			return "Patient/" + pid
		}
		return ref
	})
	if resolveErr != nil {
		return nil, resolveErr
	}
	t := s.newTarget(typ, id, obj)
	if t.compartment == "bundle-new-patient" && pending != nil {
		t.compartment = ""
		t.newPatient = pending.newPatient
	}
	t.obj = res
	return t, nil
}

// resolvePatient finds the one Patient a conditional reference names.
func (s *RecordService) resolvePatient(ctx context.Context, query string) (string, error) {
	v, err := url.ParseQuery(query)
	if err != nil {
		return "", phivault.Errorf(phivault.EINVALID, "a conditional Patient reference is not a valid query.")
	}
	q, err := fhir.ParseQuery("Patient", v, false)
	if err != nil {
		return "", err
	}
	q.Count = 2
	res, err := s.next.Search(ctx, q)
	if err != nil {
		return "", err
	}
	if len(res.Matches) != 1 {
		return "", phivault.Errorf(phivault.EFORBIDDEN, "a conditional Patient reference does not match exactly one Patient.")
	}
	return res.Matches[0].ID, nil
}

func deepCopy(v map[string]any) map[string]any {
	out := make(map[string]any, len(v))
	for k, x := range v {
		out[k] = copyValue(x)
	}
	return out
}

func copyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return deepCopy(x)
	case []any:
		out := make([]any, len(x))
		for i, y := range x {
			out[i] = copyValue(y)
		}
		return out
	}
	return v
}
