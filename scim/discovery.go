package scim

import "net/http"

// serviceProviderConfig answers what this provider supports (RFC 7643 §5).
func (h *Handler) serviceProviderConfig(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"schemas":          []string{"urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"},
		"documentationUri": "https://github.com/phivault/phivault/blob/main/docs/provisioning.md",
		"patch":            map[string]bool{"supported": true},
		"bulk":             map[string]any{"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
		"filter":           map[string]any{"supported": true, "maxResults": MaxCount},
		"changePassword":   map[string]bool{"supported": true},
		"sort":             map[string]bool{"supported": false},
		"etag":             map[string]bool{"supported": false},
		"authenticationSchemes": []map[string]any{{
			"type": "oauthbearertoken", "name": "Bearer token",
			"description": "The SCIM token made by phivault users scim-token, sent as Authorization: Bearer.",
			"primary":     true,
		}},
		"meta": map[string]string{"resourceType": "ServiceProviderConfig", "location": h.location("ServiceProviderConfig", "")},
	})
}

// resourceTypes lists User and Group (RFC 7643 §6).
func (h *Handler) resourceTypes(w http.ResponseWriter, r *http.Request) {
	types := []any{
		map[string]any{
			"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:ResourceType"},
			"id":      "User", "name": "User", "endpoint": "/Users", "schema": SchemaUser,
			"schemaExtensions": []map[string]any{{"schema": SchemaEnterprise, "required": false}},
			"meta":             map[string]string{"resourceType": "ResourceType"},
		},
		map[string]any{
			"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:ResourceType"},
			"id":      "Group", "name": "Group", "endpoint": "/Groups", "schema": SchemaGroup,
			"meta": map[string]string{"resourceType": "ResourceType"},
		},
	}
	writeJSON(w, http.StatusOK, pageOf(types, 1, len(types)))
}

// attr describes one attribute in /Schemas.
func attr(name, typ string, multi, required bool, mutability, returned, uniqueness string) map[string]any {
	return map[string]any{"name": name, "type": typ, "multiValued": multi, "required": required,
		"caseExact": false, "mutability": mutability, "returned": returned, "uniqueness": uniqueness}
}

// schemas describes the attributes phivault stores (RFC 7643 §7);
// standard attributes it does not store are accepted and ignored.
func (h *Handler) schemas(w http.ResponseWriter, r *http.Request) {
	schema := func(id, name string, attrs ...map[string]any) map[string]any {
		return map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Schema"}, "id": id, "name": name,
			"attributes": attrs, "meta": map[string]string{"resourceType": "Schema"}}
	}
	value := attr("value", "string", false, true, "readWrite", "default", "none")
	roles := attr("roles", "complex", true, false, "readWrite", "default", "none")
	roles["subAttributes"] = []map[string]any{value}
	groups := attr("groups", "complex", true, false, "readOnly", "default", "none")
	groups["subAttributes"] = []map[string]any{value}
	members := attr("members", "complex", true, false, "readWrite", "default", "none")
	members["subAttributes"] = []map[string]any{value}
	list := []any{
		schema(SchemaUser, "User",
			attr("userName", "string", false, true, "readWrite", "default", "server"),
			attr("externalId", "string", false, false, "readWrite", "default", "none"),
			attr("active", "boolean", false, false, "readWrite", "default", "none"),
			attr("password", "string", false, false, "writeOnly", "never", "none"),
			roles, groups),
		schema(SchemaEnterprise, "EnterpriseUser",
			attr("department", "string", false, false, "readWrite", "default", "none"),
			attr("organization", "string", false, false, "readWrite", "default", "none")),
		schema(SchemaGroup, "Group",
			attr("displayName", "string", false, true, "readOnly", "default", "server"),
			members),
	}
	writeJSON(w, http.StatusOK, pageOf(list, 1, len(list)))
}
