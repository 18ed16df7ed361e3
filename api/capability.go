package api

import (
	"strings"
	"time"

	"github.com/phivault/phivault/fhir"
)

// The CapabilityStatement, in the order FHIR lists its elements. It states
// exactly what the handler serves.
type capStatement struct {
	ResourceType   string      `json:"resourceType"`
	Status         string      `json:"status"`
	Date           string      `json:"date"`
	Publisher      string      `json:"publisher"`
	Kind           string      `json:"kind"`
	Software       capSoftware `json:"software"`
	Implementation *capImpl    `json:"implementation,omitempty"`
	FHIRVersion    string      `json:"fhirVersion"`
	Format         []string    `json:"format"`
	Rest           []capRest   `json:"rest"`
}

type capSoftware struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

type capImpl struct {
	Extension   []capExtension `json:"extension,omitempty"`
	Description string         `json:"description"`
	URL         string         `json:"url,omitempty"`
}

// InstallIDExtension is the URL of the extension on
// CapabilityStatement.implementation that carries the install id
// (Options.InstallID): clients such as "phivault import" tell a server
// apart from a fresh one at the same address by it.
const InstallIDExtension = "https://github.com/phivault/phivault/fhir/StructureDefinition/install-id"

type capRest struct {
	Mode        string           `json:"mode"`
	Security    capSecurity      `json:"security"`
	Resource    []capResource    `json:"resource"`
	Interaction []capInteraction `json:"interaction"`
}

type capSecurity struct {
	Extension   []capExtension   `json:"extension,omitempty"`
	CORS        bool             `json:"cors"`
	Service     []capCodeConcept `json:"service"`
	Description string           `json:"description"`
}

type capCodeConcept struct {
	Coding []capCoding `json:"coding"`
}

type capCoding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

// capExtension is an extension: the SMART oauth-uris extension and its
// parts, or the install id.
type capExtension struct {
	URL       string         `json:"url"`
	ValueURI  string         `json:"valueUri,omitempty"`
	ValueID   string         `json:"valueId,omitempty"`
	Extension []capExtension `json:"extension,omitempty"`
}

// smartSecurity returns the SMART App Launch security block: the service
// code, and, when the base URL is known, the OAuth endpoints (clients
// should prefer .well-known/smart-configuration).
func smartSecurity(baseURL string) capSecurity {
	sec := capSecurity{
		Service: []capCodeConcept{{Coding: []capCoding{{
			System: "http://terminology.hl7.org/CodeSystem/restful-security-service", Code: "SMART-on-FHIR"}}}},
		Description: "Every request except GET /metadata needs a bearer token: Authorization: Bearer <token>. " +
			"Tokens come from the SMART App Launch and Backend Services endpoints in " +
			".well-known/smart-configuration.",
	}
	if origin, ok := strings.CutSuffix(baseURL, "/fhir"); ok {
		sec.Extension = []capExtension{{
			URL: "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
			Extension: []capExtension{
				{URL: "authorize", ValueURI: origin + "/oauth/authorize"},
				{URL: "token", ValueURI: origin + "/oauth/token"},
				{URL: "revoke", ValueURI: origin + "/oauth/revoke"},
			},
		}}
	}
	return sec
}

type capResource struct {
	Type              string           `json:"type"`
	Interaction       []capInteraction `json:"interaction"`
	Versioning        string           `json:"versioning"`
	ReadHistory       bool             `json:"readHistory"`
	UpdateCreate      bool             `json:"updateCreate"`
	ConditionalCreate bool             `json:"conditionalCreate"`
	ConditionalUpdate bool             `json:"conditionalUpdate"`
	ConditionalDelete string           `json:"conditionalDelete"`
	SearchInclude     []string         `json:"searchInclude,omitempty"`
	SearchParam       []capSearchParam `json:"searchParam,omitempty"`
	Operation         []capOperation   `json:"operation,omitempty"`
}

type capInteraction struct {
	Code string `json:"code"`
}

type capSearchParam struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

type capOperation struct {
	Name       string `json:"name"`
	Definition string `json:"definition"`
}

var (
	crudInteractions   = []string{"read", "vread", "update", "delete", "history-instance", "history-type", "create"}
	searchInteractions = append(append([]string(nil), crudInteractions...), "search-type")
)

// auditEventCapability is what the audit trail's read-only AuditEvent view
// (package auditlog) serves: read and search, no writes, no history.
var auditEventCapability = capResource{
	Type:              "AuditEvent",
	Interaction:       []capInteraction{{Code: "read"}, {Code: "search-type"}},
	Versioning:        "no-version",
	ConditionalDelete: "not-supported",
	SearchParam: []capSearchParam{
		{Name: "_id", Type: "token"},
		{Name: "action", Type: "token"},
		{Name: "agent", Type: "reference"},
		{Name: "date", Type: "date"},
		{Name: "patient", Type: "reference"},
		{Name: "purpose", Type: "token"}, // R5's name; R4 has none (see docs/audit-log.md)
	},
}

// capabilityStatement builds the CapabilityStatement once, at NewHandler.
func capabilityStatement(version, baseURL, installID string, now time.Time) []byte {
	searchable := make(map[string]bool)
	for _, t := range fhir.SearchTypes() {
		searchable[t] = true
	}
	cs := capStatement{
		ResourceType: "CapabilityStatement",
		Status:       "active",
		Date:         now.UTC().Format(time.RFC3339),
		Publisher:    "phivault",
		Kind:         "instance",
		Software:     capSoftware{Name: "phivault", Version: version},
		FHIRVersion:  "4.0.1",
		Format:       []string{"json"},
	}
	if baseURL != "" || installID != "" {
		cs.Implementation = &capImpl{Description: "phivault FHIR server", URL: baseURL}
	}
	if installID != "" {
		cs.Implementation.Extension = []capExtension{{URL: InstallIDExtension, ValueID: installID}}
	}
	rest := capRest{
		Mode:        "server",
		Security:    smartSecurity(baseURL),
		Interaction: []capInteraction{{Code: "transaction"}, {Code: "batch"}},
	}
	for _, t := range fhir.ResourceTypes() {
		if t == "SubscriptionStatus" {
			continue // an R4B backport in the definitions: not an R4 resource-types code
		}
		if t == "AuditEvent" {
			rest.Resource = append(rest.Resource, auditEventCapability)
			continue
		}
		res := capResource{
			Type:              t,
			Versioning:        "versioned-update",
			ReadHistory:       true,
			UpdateCreate:      true,
			ConditionalCreate: true,
			ConditionalUpdate: false,
			ConditionalDelete: "not-supported",
		}
		codes := crudInteractions
		if searchable[t] {
			codes = searchInteractions
			for _, p := range fhir.SearchParams(t) {
				res.SearchParam = append(res.SearchParam, capSearchParam{Name: p.Name, Type: p.Type})
				if p.Type == "reference" {
					res.SearchInclude = append(res.SearchInclude, t+":"+p.Name)
				}
			}
		}
		for _, c := range codes {
			res.Interaction = append(res.Interaction, capInteraction{Code: c})
		}
		if t == "Patient" {
			res.Operation = []capOperation{{Name: "everything", Definition: "http://hl7.org/fhir/OperationDefinition/Patient-everything"}}
		}
		rest.Resource = append(rest.Resource, res)
	}
	cs.Rest = []capRest{rest}
	return mustEncode(cs)
}
