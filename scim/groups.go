package scim

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	filter "github.com/scim2/filter-parser/v2"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/admin"
)

// Group is the SCIM Group resource of a role.
type Group struct {
	Schemas     []string   `json:"schemas"`
	ID          string     `json:"id"`
	DisplayName string     `json:"displayName"`
	Members     []MultiVal `json:"members"`
	Meta        *Meta      `json:"meta,omitempty"`
}

// groups returns every role as a Group with its members, the visible
// accounts that hold it.
func (h *Handler) groups(r *http.Request) ([]Group, error) {
	accs, err := phivault.ListAccounts(r.Context(), h.opts.Accounts)
	if err != nil {
		return nil, err
	}
	var out []Group
	for _, role := range admin.DefaultRoles {
		g := Group{Schemas: []string{SchemaGroup}, ID: role, DisplayName: role, Members: []MultiVal{},
			Meta: &Meta{ResourceType: "Group", Location: h.location("Groups", role)}}
		for _, s := range accs {
			if a := s.Account; visible(a) && slices.Contains(a.Roles, role) {
				g.Members = append(g.Members, MultiVal{Value: a.ID, Display: a.Username, Ref: h.location("Users", a.ID), Type: "User"})
			}
		}
		out = append(out, g)
	}
	return out, nil
}

func (h *Handler) listGroups(w http.ResponseWriter, r *http.Request) {
	start, count, err := page(r)
	var match func(string) bool
	if err == nil {
		match, err = groupFilter(r.URL.Query().Get("filter"))
	}
	var all []Group
	if err == nil {
		all, err = h.groups(r)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	all = slices.DeleteFunc(all, func(g Group) bool { return !match(g.ID) })
	writeJSON(w, http.StatusOK, pageOf(all, start, count))
}

func (h *Handler) group(r *http.Request, id string) (*Group, error) {
	all, err := h.groups(r)
	if err != nil {
		return nil, err
	}
	for _, g := range all {
		if g.ID == id {
			return &g, nil
		}
	}
	return nil, phivault.ErrNotFound
}

func (h *Handler) getGroup(w http.ResponseWriter, r *http.Request) {
	g, err := h.group(r, r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

// fixedGroups refuses to create or delete groups: they are the roles the
// policies know.
func (h *Handler) fixedGroups(w http.ResponseWriter, r *http.Request) {
	writeError(w, &typedError{"mutability", phivault.Errorf(phivault.EFORBIDDEN,
		"Groups are phivault's fixed roles; they cannot be created or deleted, only their members changed.")})
}

// patchGroup adds or removes members: it grants or withdraws the role.
func (h *Handler) patchGroup(w http.ResponseWriter, r *http.Request) {
	role := r.PathValue("id")
	g, err := h.group(r, role)
	if err != nil {
		writeError(w, err)
		return
	}
	p, err := readPatch(w, r)
	if err != nil {
		h.finish(w, r, "", err, 0, nil)
		return
	}
	members := memberIDs(g)
	for _, op := range p.Operations {
		if members, err = patchMembers(members, op); err != nil {
			h.finish(w, r, "", err, 0, nil)
			return
		}
	}
	h.setMembers(w, r, g, members)
}

// replaceGroup replaces the members of a group (PUT).
func (h *Handler) replaceGroup(w http.ResponseWriter, r *http.Request) {
	g, err := h.group(r, r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	var req Group
	if err := decode(w, r, &req); err != nil {
		h.finish(w, r, "", err, 0, nil)
		return
	}
	if req.DisplayName != "" && req.DisplayName != g.DisplayName {
		h.finish(w, r, "", invalid("mutability", "A group's displayName is its role and cannot change."), 0, nil)
		return
	}
	var ids []string
	for _, m := range req.Members {
		ids = append(ids, m.Value)
	}
	h.setMembers(w, r, g, dedupe(ids))
}

func memberIDs(g *Group) []string {
	var ids []string
	for _, m := range g.Members {
		ids = append(ids, m.Value)
	}
	return ids
}

// patchMembers applies one operation to a member list.
func patchMembers(members []string, op operation) ([]string, error) {
	path := op.Path
	var sel func(string) bool
	if path != "" {
		p, err := parseMembersPath(path)
		if err != nil {
			return nil, err
		}
		sel = p
	}
	var vals []string
	if len(op.Value) > 0 {
		raw := op.Value
		if path == "" { // {"members": [...]} or {"displayName": ...}
			var attrs struct {
				Members     json.RawMessage `json:"members"`
				DisplayName *string         `json:"displayName"`
			}
			if err := json.Unmarshal(op.Value, &attrs); err != nil || attrs.Members == nil {
				return nil, invalid("invalidValue", "A group PATCH without a path needs {\"members\": [...]}.")
			}
			raw = attrs.Members
		}
		var err error
		if vals, err = multiValues(raw); err != nil {
			return nil, err
		}
	}
	return patchList(members, op.Op, sel, vals), nil
}

// parseMembersPath accepts "members" and "members[value eq "id"]"; it
// returns nil for plain "members".
func parseMembersPath(path string) (func(string) bool, error) {
	p, err := parsePath(path)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(p.AttributePath.AttributeName, "members") || p.AttributePath.SubAttribute != nil || p.SubAttribute != nil {
		return nil, invalid("invalidPath", "Group PATCH paths are members or members[value eq \"...\"].")
	}
	if p.ValueExpression == nil {
		return nil, nil
	}
	return valueFilter(p.ValueExpression)
}

// setMembers makes the members of g exactly ids: the role is granted to
// new members and withdrawn from removed ones, each an account change
// with its sessions revoked. Every id is checked before any change.
func (h *Handler) setMembers(w http.ResponseWriter, r *http.Request, g *Group, ids []string) {
	ctx := r.Context()
	for _, id := range ids {
		if _, err := h.account(ctx, id); err != nil {
			h.finish(w, r, "", invalid("invalidValue", "A member is not a known user id."), 0, nil)
			return
		}
	}
	old := memberIDs(g)
	change := func(id string, grant bool) error {
		_, err := h.modify(ctx, id, func(a *phivault.Account) error {
			if grant {
				a.Roles = dedupe(append(a.Roles, g.ID))
			} else {
				a.Roles = slices.DeleteFunc(a.Roles, func(r string) bool { return r == g.ID })
			}
			return nil
		})
		if aerr := h.record(ctx, id, err); aerr != nil && err == nil {
			err = aerr
		}
		return err
	}
	for _, id := range ids {
		if !slices.Contains(old, id) {
			if err := change(id, true); err != nil {
				writeError(w, err)
				return
			}
		}
	}
	for _, id := range old {
		if !slices.Contains(ids, id) {
			if err := change(id, false); err != nil {
				writeError(w, err)
				return
			}
		}
	}
	ng, err := h.group(r, g.ID)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ng)
}

func parsePath(path string) (filter.Path, error) {
	p, err := filter.ParsePath([]byte(path))
	if err != nil {
		return filter.Path{}, invalid("invalidPath", "The PATCH path is not a valid SCIM path.")
	}
	return p, nil
}
