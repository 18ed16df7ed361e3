package detect

import (
	"encoding/json"
	"fmt"
	"slices"
)

// scorerStateVersion is the version of the RiskScorer's saved state;
// state of another version is refused, and the scorer starts afresh.
const scorerStateVersion = 1

type scorerState struct {
	Version  int                 `json:"version"`
	Started  bool                `json:"started"`
	Day      int64               `json:"day"`
	Depts    []string            `json:"depts,omitempty"`
	Users    []scoreUserState    `json:"users,omitempty"`
	Patients []scorePatientState `json:"patients,omitempty"`
}

type scoreUserState struct {
	ID         string        `json:"id"`
	Roles      []string      `json:"roles,omitempty"`
	Role       string        `json:"role,omitempty"` // the least of Roles; alone in older states
	Dept       string        `json:"dept,omitempty"`
	Group      string        `json:"group,omitempty"`
	Hist       []dayFeatures `json:"hist,omitempty"`
	Hours      [24]float64   `json:"hours"`
	Off        uint32        `json:"off"`
	Recent     []int32       `json:"recent,omitempty"`
	RecentNext int           `json:"recent_next,omitempty"`
	AlertScore int           `json:"alert_score,omitempty"`
	AlertDay   int64         `json:"alert_day,omitempty"`

	Events    int32     `json:"events,omitempty"`
	Searches  int32     `json:"searches,omitempty"`
	Opened    int32     `json:"opened,omitempty"`
	Unrelated int32     `json:"unrelated,omitempty"`
	OffEvents int32     `json:"off_events,omitempty"`
	DayHours  [24]int32 `json:"day_hours"`
	DayDepts  []int32   `json:"day_depts,omitempty"`
	Seen      []string  `json:"seen,omitempty"` // sorted
}

type scorePatientState struct {
	ID        string  `json:"id"`
	Accessors []int32 `json:"accessors,omitempty"`
	Next      int     `json:"next,omitempty"`
}

// MarshalState implements Stateful. The state holds ids only.
func (s *RiskScorer) MarshalState() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := scorerState{Version: scorerStateVersion, Started: s.started, Day: s.day, Depts: s.depts}
	st.Users = make([]scoreUserState, len(s.users))
	for i, u := range s.users {
		c := &u.cur
		seen := make([]string, 0, len(c.seen))
		for p := range c.seen {
			seen = append(seen, p)
		}
		slices.Sort(seen)
		st.Users[i] = scoreUserState{
			ID: u.id, Roles: u.roles, Role: u.role, Dept: u.dept, Group: u.group,
			Hist: u.hist, Hours: u.hours, Off: u.off,
			Recent: u.recent, RecentNext: u.recentNext,
			AlertScore: u.alertScore, AlertDay: u.alertDay,
			Events: c.events, Searches: c.searches, Opened: c.patients, Unrelated: c.unrelated,
			OffEvents: c.off, DayHours: c.hours, DayDepts: c.depts, Seen: seen,
		}
	}
	st.Patients = make([]scorePatientState, len(s.patients))
	for i, p := range s.patients {
		st.Patients[i] = scorePatientState{ID: p.id, Accessors: p.accessors, Next: p.next}
	}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("risk scorer state: %w", err)
	}
	return b, nil
}

// UnmarshalState implements Stateful: it replaces the scorer's state
// with what MarshalState returned.
func (s *RiskScorer) UnmarshalState(b []byte) error {
	var st scorerState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("risk scorer state: %w", err)
	}
	if st.Version != scorerStateVersion {
		return fmt.Errorf("risk scorer state: version %d, want %d", st.Version, scorerStateVersion)
	}
	nu, np := int32(len(st.Users)), int32(len(st.Patients))
	valid := func(list []int32, n int32) bool {
		for _, x := range list {
			if x < 0 || x >= n {
				return false
			}
		}
		return true
	}
	users := make([]*scoreUser, len(st.Users))
	userIdx := make(map[string]int32, len(st.Users))
	for i, us := range st.Users {
		if us.RecentNext < 0 || us.RecentNext > len(us.Recent) || !valid(us.Recent, np) || !valid(us.DayDepts, int32(len(st.Depts))) {
			return fmt.Errorf("risk scorer state: user %d: index out of range", i)
		}
		u := &scoreUser{
			id: us.ID, roles: us.Roles, role: us.Role, dept: us.Dept, group: us.Group,
			hist: us.Hist, hours: us.Hours, off: us.Off,
			recent: us.Recent, recentNext: us.RecentNext,
			alertScore: us.AlertScore, alertDay: us.AlertDay,
			cur: userDay{
				events: us.Events, searches: us.Searches, patients: us.Opened, unrelated: us.Unrelated,
				off: us.OffEvents, hours: us.DayHours, depts: us.DayDepts,
			},
		}
		if u.roles == nil && u.role != "" {
			u.roles = []string{u.role} // a state of before roles were kept
		}
		if len(us.Seen) > 0 {
			u.cur.seen = make(map[string]struct{}, len(us.Seen))
			for _, p := range us.Seen {
				u.cur.seen[p] = struct{}{}
			}
		}
		users[i] = u
		userIdx[us.ID] = int32(i)
	}
	patients := make([]scorePatient, len(st.Patients))
	patIdx := make(map[string]int32, len(st.Patients))
	for i, ps := range st.Patients {
		if ps.Next < 0 || ps.Next > len(ps.Accessors) || !valid(ps.Accessors, nu) {
			return fmt.Errorf("risk scorer state: patient %d: index out of range", i)
		}
		patients[i] = scorePatient{id: ps.ID, accessors: ps.Accessors, next: ps.Next}
		patIdx[ps.ID] = int32(i)
	}
	deptIdx := make(map[string]int32, len(st.Depts))
	for i, d := range st.Depts {
		deptIdx[d] = int32(i)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started, s.day = st.Started, st.Day
	s.users, s.userIdx, s.lastUser = users, userIdx, 0
	s.patients, s.patIdx = patients, patIdx
	s.depts, s.deptIdx = st.Depts, deptIdx
	s.peerCache = map[string]*robustModel{}
	return nil
}
