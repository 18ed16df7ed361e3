package scim

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	filter "github.com/scim2/filter-parser/v2"

	"github.com/phivault/phivault"
)

// patchRequest is a PatchOp message (RFC 7644 §3.5.2).
type patchRequest struct {
	Schemas    []string    `json:"schemas"`
	Operations []operation `json:"Operations"`
}

type operation struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value"`
}

// readPatch decodes and checks a PatchOp body; op names are lower-cased.
func readPatch(w http.ResponseWriter, r *http.Request) (*patchRequest, error) {
	var p patchRequest
	if err := decode(w, r, &p); err != nil {
		return nil, err
	}
	if !slices.Contains(p.Schemas, SchemaPatch) {
		return nil, invalid("invalidSyntax", "A PATCH body needs the schema "+SchemaPatch+".")
	}
	if len(p.Operations) == 0 {
		return nil, invalid("invalidSyntax", "A PATCH body needs at least one operation.")
	}
	for i := range p.Operations {
		op := &p.Operations[i]
		op.Op = strings.ToLower(op.Op)
		switch op.Op {
		case "add", "replace", "remove":
		default:
			return nil, invalid("invalidSyntax", "A PATCH op is add, replace or remove.")
		}
		if op.Op != "remove" && len(op.Value) == 0 {
			return nil, invalid("invalidValue", "A PATCH %s needs a value.", op.Op)
		}
		if op.Op == "remove" && op.Path == "" {
			return nil, invalid("noTarget", "A PATCH remove needs a path.")
		}
	}
	return &p, nil
}

// boolValue reads a JSON boolean, or the strings "true" and "false" in
// any case, which some identity providers send.
func boolValue(raw json.RawMessage) (bool, error) {
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch strings.ToLower(s) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	}
	return false, invalid("invalidValue", "active must be true or false.")
}

// multiValues reads one {"value": ...} object or an array of them.
func multiValues(raw json.RawMessage) ([]string, error) {
	var list []MultiVal
	if err := json.Unmarshal(raw, &list); err != nil {
		var one MultiVal
		if err := json.Unmarshal(raw, &one); err != nil {
			return nil, invalid("invalidValue", "Want a list of {\"value\": ...} objects.")
		}
		list = []MultiVal{one}
	}
	var out []string
	for _, v := range list {
		if v.Value == "" {
			return nil, invalid("invalidValue", "Every entry needs a value.")
		}
		out = append(out, v.Value)
	}
	return out, nil
}

func stringValue(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", invalid("invalidValue", "Want a string value.")
	}
	return s, nil
}

// valueFilter returns a predicate for the values a path filter such as
// [value eq "x"] selects; only "value eq" (joined with and, or) is
// supported.
func valueFilter(e filter.Expression) (func(string) bool, error) {
	switch e := e.(type) {
	case *filter.AttributeExpression:
		v, ok := e.CompareValue.(string)
		if strings.ToLower(e.AttributePath.AttributeName) != "value" || e.Operator != filter.EQ || !ok {
			return nil, invalid("invalidFilter", "Only [value eq \"...\"] path filters are supported.")
		}
		return func(s string) bool { return s == v }, nil
	case *filter.LogicalExpression:
		l, err := valueFilter(e.Left)
		if err != nil {
			return nil, err
		}
		r, err := valueFilter(e.Right)
		if err != nil {
			return nil, err
		}
		if e.Operator == filter.AND {
			return func(s string) bool { return l(s) && r(s) }, nil
		}
		return func(s string) bool { return l(s) || r(s) }, nil
	}
	return nil, invalid("invalidFilter", "Only [value eq \"...\"] path filters are supported.")
}

// patchUser applies a PatchOp to a User.
func (h *Handler) patchUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	p, err := readPatch(w, r)
	var a *phivault.Account
	if err == nil {
		pw := h.passwordHashes()
		a, err = h.modify(r.Context(), id, func(a *phivault.Account) error {
			for _, op := range p.Operations {
				if err := patchUserOp(a, op, pw); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		h.finish(w, r, id, err, 0, nil)
		return
	}
	h.finish(w, r, id, nil, http.StatusOK, h.userOf(a))
}

func patchUserOp(a *phivault.Account, op operation, pw *passwordHashes) error {
	if op.Path == "" {
		// No path: the value is an object of attributes to add or replace.
		var attrs map[string]json.RawMessage
		if err := json.Unmarshal(op.Value, &attrs); err != nil {
			return invalid("invalidValue", "A PATCH without a path needs an object value.")
		}
		for k, v := range attrs {
			if ext, ok := strings.CutPrefix(k, SchemaEnterprise); ok && ext == "" {
				var sub map[string]json.RawMessage
				if err := json.Unmarshal(v, &sub); err != nil {
					return invalid("invalidValue", "The enterprise extension must be an object.")
				}
				for sk, sv := range sub {
					if err := setUserAttr(a, op.Op, SchemaEnterprise+":"+sk, sv, pw); err != nil {
						return err
					}
				}
				continue
			}
			if err := setUserAttr(a, op.Op, k, v, pw); err != nil {
				return err
			}
		}
		return nil
	}
	return setUserAttr(a, op.Op, op.Path, op.Value, pw)
}

// setUserAttr applies one op to the attribute at path.
func setUserAttr(a *phivault.Account, op, path string, v json.RawMessage, pw *passwordHashes) error {
	p, err := parsePath(path)
	if err != nil {
		return err
	}
	name, ok := attrName(p.AttributePath)
	if !ok {
		return invalid("invalidPath", "The PATCH path names a schema this server does not support.")
	}
	if p.ValueExpression != nil && name != "roles" {
		return invalid("invalidPath", "Only roles take a path filter.")
	}
	switch name {
	case "active":
		if op == "remove" {
			return invalid("mutability", "active cannot be removed.")
		}
		b, err := boolValue(v)
		if err != nil {
			return err
		}
		a.Status = statusOf(b)
	case "username":
		if op == "remove" {
			return invalid("mutability", "userName is required.")
		}
		s, err := stringValue(v)
		if err != nil {
			return err
		}
		a.Username = s
	case "externalid", "department", "organization":
		s := ""
		if op != "remove" {
			if s, err = stringValue(v); err != nil {
				return err
			}
		}
		switch name {
		case "externalid":
			a.ExternalID = s
		case "department":
			a.Department = s
		default:
			a.Organization = s
		}
	case "password":
		if op == "remove" {
			return invalid("mutability", "The password cannot be removed, only replaced.")
		}
		s, err := stringValue(v)
		if err != nil {
			return err
		}
		return pw.set(a, s)
	case "roles", "roles.value":
		return patchRoles(a, op, p.ValueExpression, v)
	default:
		if _, known := userAttrs[name]; known {
			return nil // a standard attribute phivault does not store: ignored
		}
		return invalid("invalidPath", "The PATCH path names an attribute this server does not support.")
	}
	return nil
}

func patchRoles(a *phivault.Account, op string, where filter.Expression, v json.RawMessage) error {
	var sel func(string) bool
	if where != nil {
		var err error
		if sel, err = valueFilter(where); err != nil {
			return err
		}
	}
	var vals []string
	if len(v) > 0 {
		var err error
		if vals, err = multiValues(v); err != nil {
			return err
		}
	}
	if sel != nil && op != "remove" {
		return invalid("invalidPath", "A path filter on roles is supported for remove only.")
	}
	a.Roles = patchList(a.Roles, op, sel, vals)
	return nil
}

// patchList applies op to the values of a multi-valued attribute (roles,
// members): remove drops the values sel selects, else those in vals, else
// all; replace sets vals; add appends them. Duplicates are dropped.
func patchList(list []string, op string, sel func(string) bool, vals []string) []string {
	switch {
	case op == "remove" && sel != nil:
		return slices.DeleteFunc(list, sel)
	case op == "remove" && vals != nil:
		return slices.DeleteFunc(list, func(v string) bool { return slices.Contains(vals, v) })
	case op == "remove":
		return nil
	case op == "replace":
		return dedupe(vals)
	default: // add
		return dedupe(append(list, vals...))
	}
}

func dedupe(s []string) []string {
	var out []string
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
