package detect

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
)

// OCSF Detection Finding (class 2004, category 2 Findings), schema 1.3.0:
// https://schema.ocsf.io/1.3.0/classes/detection_finding
const (
	ocsfClassDetectionFinding = 2004
	ocsfCategoryFindings      = 2
	OCSFVersion               = "1.3.0"
)

// OCSFFinding is an alert as an OCSF Detection Finding. Only the
// attributes phivault fills are declared; the alert's fields map as:
//
//	finding_info.uid, .title, .desc      ID, "phivault detect: RULE", Why
//	finding_info.types, .analytic.name   Rule
//	finding_info.created_time            Detected
//	finding_info.first_seen_time, start_time   First
//	finding_info.last_seen_time, end_time      Last
//	severity_id                          low 2, medium 3, high 4, critical 5
//	risk_score                           Score
//	status_id                            open 1 New, true-positive 2 In Progress,
//	                                     false-positive, benign or suppressed 3 Suppressed
//	resources                            Patients, as {type: Patient, uid}
//	evidences                            each of Evidence as data.ref, the first with
//	                                     actor.user.uid = User
//	observables                          the user and patient ids
//	unmapped                             events merged, factors, suppressed
//
// Ids only: no names, no resource contents.
type OCSFFinding struct {
	ClassUID     int               `json:"class_uid"`
	ClassName    string            `json:"class_name"`
	CategoryUID  int               `json:"category_uid"`
	CategoryName string            `json:"category_name"`
	ActivityID   int               `json:"activity_id"`
	ActivityName string            `json:"activity_name"`
	TypeUID      int               `json:"type_uid"`
	Time         int64             `json:"time"` // ms since the epoch: when the finding was made
	SeverityID   int               `json:"severity_id"`
	Severity     string            `json:"severity"`
	StatusID     int               `json:"status_id"`
	Status       string            `json:"status"`
	Message      string            `json:"message"`
	RiskScore    int               `json:"risk_score"`
	StartTime    int64             `json:"start_time"`
	EndTime      int64             `json:"end_time"`
	FindingInfo  ocsfFindingInfo   `json:"finding_info"`
	Resources    []ocsfResource    `json:"resources,omitempty"`
	Evidences    []ocsfEvidence    `json:"evidences"`
	Observables  []ocsfObservable  `json:"observables,omitempty"`
	Metadata     ocsfMetadata      `json:"metadata"`
	Unmapped     ocsfFindingExtras `json:"unmapped"`
}

type ocsfFindingInfo struct {
	UID           string       `json:"uid"`
	Title         string       `json:"title"`
	Desc          string       `json:"desc"`
	Types         []string     `json:"types"`
	Analytic      ocsfAnalytic `json:"analytic"`
	CreatedTime   int64        `json:"created_time"`
	FirstSeenTime int64        `json:"first_seen_time"`
	LastSeenTime  int64        `json:"last_seen_time"`
}

type ocsfAnalytic struct {
	Name   string `json:"name"`
	TypeID int    `json:"type_id"` // 1 Rule
	Type   string `json:"type"`
}

type ocsfResource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type ocsfEvidence struct {
	Actor *ocsfActor       `json:"actor,omitempty"`
	Data  ocsfEvidenceData `json:"data"`
}

type ocsfEvidenceData struct {
	Ref string `json:"ref"` // "trail/N" or "ingest/N"
}

type ocsfActor struct {
	User ocsfUser `json:"user"`
}

type ocsfUser struct {
	UID string `json:"uid"`
}

type ocsfObservable struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	TypeID int    `json:"type_id"`
	Value  string `json:"value"`
}

type ocsfMetadata struct {
	Version string      `json:"version"`
	Product ocsfProduct `json:"product"`
	LogName string      `json:"log_name"`
}

type ocsfProduct struct {
	Name       string      `json:"name"`
	VendorName string      `json:"vendor_name"`
	Version    string      `json:"version,omitempty"`
	Feature    ocsfFeature `json:"feature"`
}

type ocsfFeature struct {
	Name string `json:"name"`
}

type ocsfFindingExtras struct {
	Rule       string   `json:"rule"`
	Events     int64    `json:"events"`
	Factors    []string `json:"factors,omitempty"`
	Suppressed bool     `json:"suppressed"`
}

var ocsfSeverity = map[Severity]struct {
	id   int
	name string
}{
	SeverityLow: {2, "Low"}, SeverityMedium: {3, "Medium"},
	SeverityHigh: {4, "High"}, SeverityCritical: {5, "Critical"},
}

// OCSF returns a as an OCSF Detection Finding; update says whether the
// finding was sent before (activity 2 Update) or is new (1 Create).
// version is the product version in metadata.
func OCSF(a *Alert, version string, update bool) *OCSFFinding {
	activity, activityName := 1, "Create"
	if update {
		activity, activityName = 2, "Update"
	}
	sev, ok := ocsfSeverity[a.Severity]
	if !ok {
		sev.id, sev.name = 0, "Unknown"
	}
	status, statusName := 1, "New"
	switch {
	case a.State == StateTruePositive:
		status, statusName = 2, "In Progress"
	case a.State == StateFalsePositive || a.State == StateBenign || a.Suppressed:
		status, statusName = 3, "Suppressed"
	}
	f := &OCSFFinding{
		ClassUID: ocsfClassDetectionFinding, ClassName: "Detection Finding",
		CategoryUID: ocsfCategoryFindings, CategoryName: "Findings",
		ActivityID: activity, ActivityName: activityName,
		TypeUID:    ocsfClassDetectionFinding*100 + activity,
		Time:       a.Detected.UnixMilli(),
		SeverityID: sev.id, Severity: sev.name,
		StatusID: status, Status: statusName,
		Message:   a.Why,
		RiskScore: a.Score,
		StartTime: a.First.UnixMilli(), EndTime: a.Last.UnixMilli(),
		FindingInfo: ocsfFindingInfo{
			UID: a.ID, Title: "phivault detect: " + a.Rule, Desc: a.Why, Types: []string{a.Rule},
			Analytic:    ocsfAnalytic{Name: a.Rule, TypeID: 1, Type: "Rule"},
			CreatedTime: a.Detected.UnixMilli(), FirstSeenTime: a.First.UnixMilli(), LastSeenTime: a.Last.UnixMilli(),
		},
		Evidences: []ocsfEvidence{},
		Metadata: ocsfMetadata{
			Version: OCSFVersion, LogName: "detect",
			Product: ocsfProduct{Name: "phivault", VendorName: "phivault", Version: version, Feature: ocsfFeature{Name: "detect"}},
		},
		Unmapped: ocsfFindingExtras{Rule: a.Rule, Events: a.Events, Factors: a.Factors, Suppressed: a.Suppressed},
	}
	if a.User != "" {
		f.Observables = append(f.Observables, ocsfObservable{Name: "evidences.actor.user.uid", Type: "Other", TypeID: 99, Value: a.User})
	}
	for _, p := range a.Patients {
		f.Resources = append(f.Resources, ocsfResource{Type: "Patient", UID: p})
		f.Observables = append(f.Observables, ocsfObservable{Name: "resources.uid", Type: "Resource UID", TypeID: 10, Value: p})
	}
	for i, ref := range a.Evidence {
		ev := ocsfEvidence{Data: ocsfEvidenceData{Ref: ref}}
		if i == 0 && a.User != "" {
			ev.Actor = &ocsfActor{User: ocsfUser{UID: a.User}}
		}
		f.Evidences = append(f.Evidences, ev)
	}
	if len(f.Evidences) == 0 && a.User != "" {
		f.Evidences = append(f.Evidences, ocsfEvidence{Actor: &ocsfActor{User: ocsfUser{UID: a.User}}})
	}
	return f
}

// OCSFStream writes each alert to W as an OCSF Detection Finding, one
// JSON object a line (NDJSON). A finding it wrote before (since the
// process started) is written again as an Update. It is safe for
// concurrent use by multiple goroutines.
type OCSFStream struct {
	W       io.Writer
	Version string // product version in metadata, or ""

	mu   sync.Mutex
	sent map[string]bool
}

var _ Notifier = (*OCSFStream)(nil)

// Notify implements Notifier.
func (s *OCSFStream) Notify(ctx context.Context, alerts []*Alert) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent == nil {
		s.sent = map[string]bool{}
	}
	var buf []byte
	for _, a := range alerts {
		b, err := json.Marshal(OCSF(a, s.Version, s.sent[a.ID]))
		if err != nil {
			return fmt.Errorf("detect: ocsf: %w", err)
		}
		buf = append(append(buf, b...), '\n')
	}
	if _, err := s.W.Write(buf); err != nil {
		return fmt.Errorf("detect: ocsf: %w", err)
	}
	for _, a := range alerts {
		s.sent[a.ID] = true
	}
	return nil
}
