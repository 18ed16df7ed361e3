package auditlog

import (
	"strconv"
	"strings"

	"github.com/phivault/phivault"
)

// OCSF API Activity (class 6003, category 6 Application Activity), schema
// 1.1.0: https://schema.ocsf.io/1.1.0/classes/api_activity
const (
	ocsfClassAPIActivity = 6003
	ocsfCategoryApp      = 6
	ocsfVersion          = "1.1.0"
)

// OCSFEvent is an audit entry as an OCSF API Activity event. Only the
// attributes phivault fills are declared; the entry's fields map as:
//
//	actor.user.uid, actor.user.groups   Actor, Roles
//	actor.app_uid                       Client
//	actor.authorizations[0].decision    Decision
//	src_endpoint.ip                     Source
//	api.operation, api.request.uid      Action, RequestID
//	resources                           the target, then every Returned version
//	status_id, status, status_code      Outcome ("ok" is Success)
//	metadata.sequence                   the entry's index in the log
//	unmapped                            Compartments, SearchParams, Purpose
type OCSFEvent struct {
	ClassUID    int            `json:"class_uid"`
	CategoryUID int            `json:"category_uid"`
	ActivityID  int            `json:"activity_id"`
	TypeUID     int            `json:"type_uid"`
	SeverityID  int            `json:"severity_id"`
	Time        int64          `json:"time"` // milliseconds since the epoch
	StatusID    int            `json:"status_id"`
	Status      string         `json:"status"`
	StatusCode  string         `json:"status_code"`
	Metadata    ocsfMetadata   `json:"metadata"`
	Actor       ocsfActor      `json:"actor"`
	SrcEndpoint ocsfEndpoint   `json:"src_endpoint"`
	API         ocsfAPI        `json:"api"`
	Resources   []ocsfResource `json:"resources,omitempty"`
	Unmapped    map[string]any `json:"unmapped,omitempty"`
}

type ocsfMetadata struct {
	Version  string      `json:"version"`
	Product  ocsfProduct `json:"product"`
	LogName  string      `json:"log_name,omitempty"`
	Sequence int64       `json:"sequence"`
}

type ocsfProduct struct {
	Name       string `json:"name"`
	VendorName string `json:"vendor_name"`
}

type ocsfActor struct {
	User           ocsfUser    `json:"user"`
	AppUID         string      `json:"app_uid,omitempty"`
	Authorizations []ocsfAuthz `json:"authorizations,omitempty"`
}

type ocsfUser struct {
	UID    string      `json:"uid,omitempty"`
	Groups []ocsfGroup `json:"groups,omitempty"`
}

type ocsfGroup struct {
	Name string `json:"name"`
}

type ocsfAuthz struct {
	Decision string `json:"decision"`
}

type ocsfEndpoint struct {
	IP string `json:"ip,omitempty"`
}

type ocsfAPI struct {
	Operation string       `json:"operation"`
	Request   *ocsfRequest `json:"request,omitempty"`
	Service   ocsfService  `json:"service"`
}

type ocsfRequest struct {
	UID string `json:"uid"`
}

type ocsfService struct {
	Name string `json:"name"`
}

type ocsfResource struct {
	Type string `json:"type,omitempty"`
	UID  string `json:"uid"`
}

// OCSF returns entry e, at index in the log named origin, as an OCSF API
// Activity event. Like the entry, it holds ids only.
func OCSF(index int64, origin string, e *phivault.AuditEntry) *OCSFEvent {
	activity := 99 // Other
	switch e.Action {
	case phivault.ActionCreate:
		activity = 1
	case phivault.ActionRead, phivault.ActionVRead, phivault.ActionSearch, phivault.ActionHistory, phivault.ActionEverything, phivault.ActionExport:
		activity = 2
	case phivault.ActionUpdate, phivault.ActionKeyRotate:
		activity = 3
	case phivault.ActionDelete, phivault.ActionShred:
		activity = 4
	}
	ev := &OCSFEvent{
		ClassUID: ocsfClassAPIActivity, CategoryUID: ocsfCategoryApp,
		ActivityID: activity, TypeUID: ocsfClassAPIActivity*100 + activity,
		SeverityID: 1, // Informational
		Time:       e.Time.UnixMilli(),
		StatusID:   1, Status: "Success", StatusCode: e.Outcome,
		Metadata: ocsfMetadata{
			Version: ocsfVersion, Product: ocsfProduct{Name: "phivault", VendorName: "phivault"},
			LogName: origin, Sequence: index,
		},
		Actor:       ocsfActor{User: ocsfUser{UID: e.Actor}, AppUID: e.Client},
		SrcEndpoint: ocsfEndpoint{IP: e.Source},
		API:         ocsfAPI{Operation: e.Action, Service: ocsfService{Name: "FHIR R4"}},
	}
	if e.Outcome != "ok" {
		ev.StatusID, ev.Status = 2, "Failure"
		ev.SeverityID = 3 // Medium: denied and failed attempts deserve a look
	}
	for _, r := range e.Roles {
		ev.Actor.User.Groups = append(ev.Actor.User.Groups, ocsfGroup{Name: r})
	}
	if e.Decision != "" {
		ev.Actor.Authorizations = []ocsfAuthz{{Decision: e.Decision}}
	}
	if e.RequestID != "" {
		ev.API.Request = &ocsfRequest{UID: e.RequestID}
	}
	if e.TargetType != "" || e.TargetID != "" {
		uid := e.TargetType
		if e.TargetID != "" {
			uid += "/" + e.TargetID
			if e.TargetVersion > 0 {
				uid += "/_history/" + strconv.FormatInt(e.TargetVersion, 10)
			}
		}
		ev.Resources = append(ev.Resources, ocsfResource{Type: e.TargetType, UID: uid})
	}
	for _, r := range e.Returned {
		typ, _, _ := strings.Cut(r, "/")
		ev.Resources = append(ev.Resources, ocsfResource{Type: typ, UID: r})
	}
	un := map[string]any{}
	if len(e.Compartments) > 0 {
		un["compartments"] = e.Compartments
	}
	if len(e.SearchParams) > 0 {
		un["search_params"] = e.SearchParams
	}
	if len(e.SearchValues) > 0 {
		un["search_value_tokens"] = e.SearchValues
	}
	if e.Purpose != "" {
		un["purpose_of_use"] = e.Purpose
	}
	if len(un) > 0 {
		ev.Unmapped = un
	}
	return ev
}
