package detect

// Rules about privilege and control changes: role grants, policy
// reloads, key operations, seal and unseal outside a declared change
// window, break-the-glass overuse and mass updates or deletes. See
// docs/detection.md, "Rules about sign-in and control changes".
//
// What the trail holds: an account change (admin.RecordChange) has Actor
// the admin who made it, TargetType "Account" or "Client", TargetID its
// id, and never the roles; the rule reads them from the directory, which
// the pipeline's Loader refreshes before the rules see the entry. A
// policy reload has Actor "system:sighup"; key operations, seal and
// unseal (admin.securityEntry) have the admin as Actor and TargetType
// "Key", "Patient" or "Vault"; a break-the-glass opening (access) has the
// person as Actor and the patient as TargetID.

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/phivault/phivault"
)

func controlRules() []Rule {
	return []Rule{
		NewRoleGrant(),
		NewPolicyReload(),
		NewKeyOperation(),
		NewSealUnseal(),
		NewBreakGlassOveruse(),
		NewMassChange(),
	}
}

// Names of the control rules.
const (
	RuleRoleGrant         = "role-grant"
	RulePolicyReload      = "policy-reload"
	RuleKeyOperation      = "key-operation"
	RuleSealUnseal        = "seal-unseal"
	RuleBreakGlassOveruse = "break-glass-overuse"
	RuleMassChange        = "mass-change"
)

// ---------------------------------------------------------------------
// role-grant

// Roles RoleGrant watches by default: those that oversee the vault, and
// those the default policies let reach patients' records (admin.GrantRoles
// without the admin role, which is RoleSecurityAdmin).
var (
	DefaultPrivilegedRoles = []string{phivault.RolePrivacyOfficer, phivault.RoleSecurityAdmin}
	DefaultClinicalRoles   = []string{"physician", "nurse", "front-desk", "billing"}
)

// RoleGrant alerts when an account change gives an account a role it did
// not have (a new account with roles counts as a grant of each): medium
// for a privileged or clinical role, low for another role, high when the
// actor granted it to itself. Key: account|role-set granted|UTC day.
//
// The trail does not say which roles changed: the rule keeps the roles it
// last saw for each account, from the directory, and compares them after
// each account change. It takes its first picture of the directory at the
// first event it sees, so it needs the directory refreshed on account
// changes (Loader.Refresh); in a replay from the start of the trail
// against today's directory, grants made before today are not seen.
type RoleGrant struct {
	// Privileged roles: oversight of the vault. Default
	// DefaultPrivilegedRoles.
	Privileged []string
	// Clinical roles: reach patients' records. Default
	// DefaultClinicalRoles.
	Clinical []string

	st roleState
}

type roleState struct {
	Seeded bool                `json:"seeded"`
	Roles  map[string][]string `json:"roles"`
}

// NewRoleGrant returns the rule with default settings.
func NewRoleGrant() *RoleGrant {
	return &RoleGrant{Privileged: slices.Clone(DefaultPrivilegedRoles), Clinical: slices.Clone(DefaultClinicalRoles),
		st: roleState{Roles: map[string][]string{}}}
}

// Name implements Rule.
func (r *RoleGrant) Name() string { return RuleRoleGrant }

// Observe implements Rule.
func (r *RoleGrant) Observe(x *Context, ev *Event) {
	change := ev.Action == phivault.ActionAccountChange && ev.OK && ev.ResourceType != "Client" && ev.ResourceID != ""
	if !r.st.Seeded {
		r.st.Seeded = true
		x.Dir.Users(func(u *User) {
			if change && u.ID == ev.ResourceID {
				return // the account this change made or changed: compared below
			}
			r.st.Roles[u.ID] = slices.Clone(u.Roles)
		})
	}
	if !change {
		return
	}
	id := ev.ResourceID
	u := x.Dir.User(id)
	if u == nil {
		delete(r.st.Roles, id)
		return
	}
	before, known := r.st.Roles[id]
	var granted []string
	for _, role := range u.Roles {
		if !slices.Contains(before, role) && !slices.Contains(granted, role) {
			granted = append(granted, role)
		}
	}
	r.st.Roles[id] = slices.Clone(u.Roles)
	if len(granted) == 0 {
		return
	}
	slices.Sort(granted)
	sev, score, kind := SeverityLow, 30, "a role"
	switch {
	case r.any(granted, r.Privileged):
		sev, score, kind = SeverityMedium, 60, "a privileged role"
	case r.any(granted, r.Clinical):
		sev, score, kind = SeverityMedium, 50, "a role that reaches patients' records"
	}
	how := "gave account " + id
	if !known {
		how = "created account " + id + " with"
	}
	if ev.User != "" && ev.User == id {
		sev, score = SeverityHigh, 85
		how = "gave itself"
	}
	actor := ev.User
	if actor == "" {
		actor = "an unknown actor"
	}
	x.Report(Finding{
		Rule: r.Name(), Key: utcDayKey(id+"|"+strings.Join(granted, ","), ev.Time), Severity: sev, Score: score, User: ev.User,
		Why: fmt.Sprintf("%s %s %s (%s).", actor, how, strings.Join(granted, ", "), kind),
	})
}

func (r *RoleGrant) any(granted, watched []string) bool {
	for _, g := range granted {
		if slices.Contains(watched, g) {
			return true
		}
	}
	return false
}

// MarshalState implements Stateful.
func (r *RoleGrant) MarshalState() ([]byte, error) { return json.Marshal(&r.st) }

// UnmarshalState implements Stateful.
func (r *RoleGrant) UnmarshalState(b []byte) error {
	st := roleState{}
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", r.Name(), err)
	}
	if st.Roles == nil {
		st.Roles = map[string][]string{}
	}
	r.st = st
	return nil
}

// ---------------------------------------------------------------------
// change windows

// ChangeWindows are the times when control changes (policy reloads, key
// operations, seal, unseal) are expected. With none declared, every such
// change alerts at low severity; with some declared, a change inside one
// raises nothing and a change outside all of them alerts at medium
// severity.
type ChangeWindows struct {
	// Weekly are recurring windows, in Location.
	Weekly []WeeklyWindow
	// Intervals are one-off windows [Start, End).
	Intervals []Interval
	// Location is the zone of Weekly; nil is UTC.
	Location *time.Location
}

// WeeklyWindow is a window recurring every week: from Start after
// midnight of Day, for Length (which may run into the next days).
type WeeklyWindow struct {
	Day    time.Weekday
	Start  time.Duration
	Length time.Duration
}

// Interval is the one-off window [Start, End).
type Interval struct {
	Start, End time.Time
}

// Declared reports whether any window is declared.
func (w *ChangeWindows) Declared() bool { return len(w.Weekly) > 0 || len(w.Intervals) > 0 }

// Contains reports whether t falls inside a declared window.
func (w *ChangeWindows) Contains(t time.Time) bool {
	for _, iv := range w.Intervals {
		if !t.Before(iv.Start) && t.Before(iv.End) {
			return true
		}
	}
	if len(w.Weekly) == 0 {
		return false
	}
	loc := w.Location
	if loc == nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	const week = 7 * 24 * time.Hour
	h, m, s := lt.Clock()
	off := time.Duration(lt.Weekday())*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute +
		time.Duration(s)*time.Second + time.Duration(lt.Nanosecond())
	for _, ww := range w.Weekly {
		start := time.Duration(ww.Day)*24*time.Hour + ww.Start
		if d := ((off-start)%week + week) % week; d < ww.Length {
			return true
		}
	}
	return false
}

// ParseChangeWindows parses declarations of change windows, each one of:
//
//	Sat 22:00-Sun 04:00                           weekly, across days
//	Tue 18:00-20:00                               weekly, one day (an end before the start is the next day)
//	Mon-Fri 18:00-19:00                           weekly, each day of a range
//	2026-12-12T22:00:00Z/2026-12-13T02:00:00Z     one interval [start, end), RFC 3339
//
// Day names are English, three letters or full, in any case. Weekly
// windows are in loc (nil is UTC).
func ParseChangeWindows(loc *time.Location, specs ...string) (ChangeWindows, error) {
	w := ChangeWindows{Location: loc}
	for _, spec := range specs {
		spec = strings.TrimSpace(spec)
		if a, b, ok := strings.Cut(spec, "/"); ok {
			start, err1 := time.Parse(time.RFC3339, strings.TrimSpace(a))
			end, err2 := time.Parse(time.RFC3339, strings.TrimSpace(b))
			if err1 != nil || err2 != nil || !end.After(start) {
				return ChangeWindows{}, fmt.Errorf("change window %q: want start/end in RFC 3339, end after start", spec)
			}
			w.Intervals = append(w.Intervals, Interval{Start: start, End: end})
			continue
		}
		ws, err := parseWeekly(spec)
		if err != nil {
			return ChangeWindows{}, fmt.Errorf("change window %q: %w", spec, err)
		}
		w.Weekly = append(w.Weekly, ws...)
	}
	return w, nil
}

func parseWeekly(spec string) ([]WeeklyWindow, error) {
	f := strings.Fields(spec)
	bad := fmt.Errorf(`want "Day HH:MM-HH:MM", "Day HH:MM-Day HH:MM", "Day-Day HH:MM-HH:MM" or "start/end"`)
	switch len(f) {
	case 2: // Day[-Day] HH:MM-HH:MM
		d1, d2, ranged := strings.Cut(f[0], "-")
		from, ok1 := parseDay(d1)
		to, ok2 := from, true
		if ranged {
			to, ok2 = parseDay(d2)
		}
		a, b, ok3 := strings.Cut(f[1], "-")
		start, ok4 := parseClock(a)
		end, ok5 := parseClock(b)
		if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || start == end {
			return nil, bad
		}
		length := end - start
		if length < 0 {
			length += 24 * time.Hour
		}
		var out []WeeklyWindow
		for d := from; ; d = (d + 1) % 7 {
			out = append(out, WeeklyWindow{Day: d, Start: start, Length: length})
			if d == to {
				break
			}
		}
		return out, nil
	case 3: // Day HH:MM-Day HH:MM
		from, ok1 := parseDay(f[0])
		a, d2, ok2 := strings.Cut(f[1], "-")
		start, ok3 := parseClock(a)
		to, ok4 := parseDay(d2)
		end, ok5 := parseClock(f[2])
		if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
			return nil, bad
		}
		const week = 7 * 24 * time.Hour
		length := ((time.Duration(to)*24*time.Hour + end) - (time.Duration(from)*24*time.Hour + start) + week) % week
		if length == 0 {
			return nil, bad
		}
		return []WeeklyWindow{{Day: from, Start: start, Length: length}}, nil
	}
	return nil, bad
}

func parseDay(s string) (time.Weekday, bool) {
	s = strings.ToLower(s)
	for d := time.Sunday; d <= time.Saturday; d++ {
		name := strings.ToLower(d.String())
		if s == name || s == name[:3] {
			return d, true
		}
	}
	return 0, false
}

func parseClock(s string) (time.Duration, bool) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 24 || mm < 0 || mm > 59 || hh == 24 && mm != 0 {
		return 0, false
	}
	return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute, true
}

// outsideWindow reports a control change ev outside windows, for rule:
// low severity with no window declared, medium outside the declared ones
// (high for severe), nothing inside one. Key: rule action|actor|UTC day.
func outsideWindow(x *Context, rule string, windows *ChangeWindows, ev *Event, severe bool) {
	declared := windows.Declared()
	if declared && windows.Contains(ev.Time) {
		return
	}
	actor := ev.User
	if actor == "" {
		actor = "an unknown actor"
	}
	what := ev.Action
	if ev.ResourceType != "" {
		what += " of " + ev.ResourceType
		if ev.ResourceID != "" {
			what += "/" + ev.ResourceID
		}
	}
	outcome := "done"
	if !ev.OK {
		outcome = "refused (" + ev.Outcome + ")"
	}
	f := Finding{Rule: rule, Key: utcDayKey(ev.Action+"|"+ev.User, ev.Time), Severity: SeverityLow, Score: 20, User: ev.User, Patients: ev.Patients}
	when := ev.Time.UTC().Format(time.RFC3339)
	if declared {
		f.Severity, f.Score = SeverityMedium, 55
		if severe {
			f.Severity, f.Score = SeverityHigh, 70
		}
		f.Why = fmt.Sprintf("A %s by %s at %s, %s, outside every declared change window.", what, actor, when, outcome)
	} else {
		f.Why = fmt.Sprintf("A %s by %s at %s, %s; no change window is declared, so every such change is reported.", what, actor, when, outcome)
	}
	x.Report(f)
}

// PolicyReload alerts on policy reloads (ActionPolicyChange) outside
// the declared change windows.
type PolicyReload struct {
	// Windows are when reloads are expected. Default none: every reload
	// alerts at low severity.
	Windows ChangeWindows
}

// NewPolicyReload returns the rule with no change window declared.
func NewPolicyReload() *PolicyReload { return &PolicyReload{} }

// Name implements Rule.
func (r *PolicyReload) Name() string { return RulePolicyReload }

// Observe implements Rule.
func (r *PolicyReload) Observe(x *Context, ev *Event) {
	if ev.Action == phivault.ActionPolicyChange {
		outsideWindow(x, r.Name(), &r.Windows, ev, false)
	}
}

// KeyOperation alerts on key rotations, keys marked compromised and
// shreds (crypto-erasure of a patient) outside the declared change
// windows; a compromised key or a shred outside a declared window is
// high.
type KeyOperation struct {
	// Windows are when key operations are expected. Default none: every
	// operation alerts at low severity.
	Windows ChangeWindows
}

// NewKeyOperation returns the rule with no change window declared.
func NewKeyOperation() *KeyOperation { return &KeyOperation{} }

// Name implements Rule.
func (r *KeyOperation) Name() string { return RuleKeyOperation }

// Observe implements Rule.
func (r *KeyOperation) Observe(x *Context, ev *Event) {
	switch ev.Action {
	case phivault.ActionKeyRotate:
		outsideWindow(x, r.Name(), &r.Windows, ev, false)
	case phivault.ActionKeyCompromised, phivault.ActionShred:
		outsideWindow(x, r.Name(), &r.Windows, ev, true)
	}
}

// SealUnseal alerts on seal and unseal (and refused attempts) outside
// the declared change windows.
type SealUnseal struct {
	// Windows are when the vault is expected to be sealed or unsealed.
	// Default none: every one alerts at low severity.
	Windows ChangeWindows
}

// NewSealUnseal returns the rule with no change window declared.
func NewSealUnseal() *SealUnseal { return &SealUnseal{} }

// Name implements Rule.
func (r *SealUnseal) Name() string { return RuleSealUnseal }

// Observe implements Rule.
func (r *SealUnseal) Observe(x *Context, ev *Event) {
	if ev.Action == phivault.ActionSeal || ev.Action == phivault.ActionUnseal {
		outsideWindow(x, r.Name(), &r.Windows, ev, false)
	}
}

// ---------------------------------------------------------------------
// break-glass-overuse

// Defaults of BreakGlassOveruse.
const (
	DefaultBreakGlassPeriod     = 30 // days
	DefaultBreakGlassMinDay     = 3
	DefaultBreakGlassOwnFactor  = 3.0
	DefaultBreakGlassMinPeriod  = 5
	DefaultBreakGlassPeerFactor = 3.0
	DefaultBreakGlassMinPeers   = 2
)

// BreakGlassOveruse compares a user's break-the-glass openings with the
// user's own rate and with the peers' (the same roles and department, as
// peerGroup has them) over the last Period days, and alerts when either
// threshold holds:
//
//   - own: at least MinDay openings today (UTC) and at least OwnFactor
//     times the user's mean daily openings over the Period days before
//     (a user with no history alerts at MinDay);
//   - peers: at least MinPeriod openings in the Period days up to today
//     and at least PeerFactor times the mean of the peers (including
//     those who opened none), when the group has at least MinPeers other
//     members.
//
// Medium severity, high when both hold. Only openings that succeeded
// count. Key: user|UTC day the episode began; an episode goes on while the
// user keeps alerting with less than Period days between alerts.
type BreakGlassOveruse struct {
	// Period is the days of history compared. Default
	// DefaultBreakGlassPeriod.
	Period int
	// MinDay is the least openings in a day for the own-rate threshold.
	// Default DefaultBreakGlassMinDay.
	MinDay int
	// OwnFactor multiplies the user's own mean daily rate. Default
	// DefaultBreakGlassOwnFactor.
	OwnFactor float64
	// MinPeriod is the least openings in Period for the peer threshold.
	// Default DefaultBreakGlassMinPeriod.
	MinPeriod int
	// PeerFactor multiplies the peers' mean. Default
	// DefaultBreakGlassPeerFactor.
	PeerFactor float64
	// MinPeers is the least other members of a peer group for the peer
	// threshold. Default DefaultBreakGlassMinPeers.
	MinPeers int

	st bgState
	// Peer group sizes from the directory, recounted once a day.
	sizes    map[string]int
	sizesDay int64
}

type bgState struct {
	Users map[string]*bgUser `json:"users"`
}

type bgUser struct {
	Group  string `json:"g"`
	Day    int64  `json:"d"` // day number (Unix days) of the latest opening
	Counts []int  `json:"c"` // openings by day, ring indexed by day % len
	// Episode is the day of the first alert of the ongoing episode, Alerted
	// the day of its latest: an overuse that goes on is one alert.
	Episode int64 `json:"e,omitempty"`
	Alerted int64 `json:"a,omitempty"`
}

// NewBreakGlassOveruse returns the rule with default settings.
func NewBreakGlassOveruse() *BreakGlassOveruse {
	return &BreakGlassOveruse{Period: DefaultBreakGlassPeriod, MinDay: DefaultBreakGlassMinDay, OwnFactor: DefaultBreakGlassOwnFactor,
		MinPeriod: DefaultBreakGlassMinPeriod, PeerFactor: DefaultBreakGlassPeerFactor, MinPeers: DefaultBreakGlassMinPeers,
		st: bgState{Users: map[string]*bgUser{}}}
}

// Name implements Rule.
func (r *BreakGlassOveruse) Name() string { return RuleBreakGlassOveruse }

func bgUnixDay(t time.Time) int64 {
	d, _ := splitTime(nil, t)
	return int64(d)
}

// advance moves u's ring to day, zeroing the days skipped.
func (u *bgUser) advance(day int64) {
	n := int64(len(u.Counts))
	if day <= u.Day {
		return
	}
	for d := u.Day + 1; d <= day && d <= u.Day+n; d++ {
		u.Counts[d%n] = 0
	}
	u.Day = day
}

// sum returns u's openings over days (day-span, day], as of day.
func (u *bgUser) sum(day int64, span int64) int {
	n := int64(len(u.Counts))
	total := 0
	for d := day - span + 1; d <= day; d++ {
		if d > u.Day || d <= u.Day-n || d <= day-n {
			continue
		}
		total += u.Counts[d%n]
	}
	return total
}

// Observe implements Rule.
func (r *BreakGlassOveruse) Observe(x *Context, ev *Event) {
	if ev.Action != phivault.ActionBreakGlass || !ev.OK || ev.User == "" {
		return
	}
	period := int64(max(r.Period, 1))
	day := bgUnixDay(ev.Time)
	group := groupKey(peerOf(x.Dir, ev))
	u := r.st.Users[ev.User]
	if u == nil || len(u.Counts) != int(period+1) {
		u = &bgUser{Day: day, Counts: make([]int, period+1)}
		r.st.Users[ev.User] = u
	}
	u.Group = group
	u.advance(day)
	if day > u.Day-(period+1) { // a late event still in the ring counts on its day
		u.Counts[day%(period+1)]++
	}
	// Forget users with no opening in the period.
	for id, v := range r.st.Users {
		if day-v.Day > period {
			delete(r.st.Users, id)
		}
	}
	today := u.sum(day, 1)
	before := u.sum(day-1, period)
	total := before + today
	ownMean := max(float64(before)/float64(period), 1/float64(period))
	own := today >= r.MinDay && float64(today) >= r.OwnFactor*ownMean

	r.countGroups(x.Dir, day)
	peers := r.sizes[group] - 1
	peerSum := 0
	for id, v := range r.st.Users {
		if id != ev.User && v.Group == group {
			peerSum += v.sum(day, period)
		}
	}
	peers = max(peers, r.peersInState(group, ev.User))
	var peerMean float64
	if peers > 0 {
		peerMean = float64(peerSum) / float64(peers)
	}
	peer := peers >= r.MinPeers && total >= r.MinPeriod && float64(total) >= r.PeerFactor*peerMean
	if !own && !peer {
		return
	}
	sev, score := SeverityMedium, 55
	var why []string
	if own {
		why = append(why, fmt.Sprintf("%d today against a mean of %.2f a day over the %d days before", today, float64(before)/float64(period), period))
	}
	if peer {
		why = append(why, fmt.Sprintf("%d in %d days against a mean of %.1f among %d peers (%s)", total, period, peerMean, peers, group))
	}
	if own && peer {
		sev, score = SeverityHigh, 75
	}
	if u.Episode == 0 || day-u.Alerted >= period {
		u.Episode = day
	}
	u.Alerted = day
	x.Report(Finding{
		Rule: r.Name(), Key: utcDayKey(ev.User, time.Unix(u.Episode*86400, 0)), Severity: sev, Score: score, User: ev.User, Patients: ev.Patients,
		Why: fmt.Sprintf("User %s opened break-the-glass access %s.", ev.User, strings.Join(why, ", and ")),
	})
}

// peersInState counts the other users of group that opened
// break-the-glass in the period, for groups the directory does not know.
func (r *BreakGlassOveruse) peersInState(group, self string) int {
	n := 0
	for id, v := range r.st.Users {
		if id != self && v.Group == group {
			n++
		}
	}
	return n
}

// countGroups recounts peer group sizes from the directory once a day.
func (r *BreakGlassOveruse) countGroups(dir *Directory, day int64) {
	if r.sizes != nil && r.sizesDay == day {
		return
	}
	r.sizes, r.sizesDay = map[string]int{}, day
	dir.Users(func(u *User) { r.sizes[groupKey(u.Roles, u.Department)]++ })
}

// MarshalState implements Stateful.
func (r *BreakGlassOveruse) MarshalState() ([]byte, error) { return json.Marshal(&r.st) }

// UnmarshalState implements Stateful.
func (r *BreakGlassOveruse) UnmarshalState(b []byte) error {
	st := bgState{}
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", r.Name(), err)
	}
	if st.Users == nil {
		st.Users = map[string]*bgUser{}
	}
	r.st, r.sizes = st, nil
	return nil
}

// ---------------------------------------------------------------------
// mass-change

// Defaults of MassChange.
const (
	DefaultMassWindow   = 5 * time.Minute
	DefaultMassWrites   = 100
	DefaultMassDeletes  = 20
	DefaultMassPatients = 50
)

// MassChange alerts on ransomware-like write patterns: within Window,
// one user attempting at least Writes updates and deletes, or Deletes
// deletes, or writing to at least Patients distinct patients. High
// severity, critical when the deletes threshold holds. Attempts count
// whether or not they succeeded. Key: user|start of the episode.
//
// Counts are estimated over a sliding window from two aligned buckets
// (constant memory); distinct patients are counted exactly.
type MassChange struct {
	// Window is the sliding window. Default DefaultMassWindow.
	Window time.Duration
	// Writes is the updates and deletes that alert. Default
	// DefaultMassWrites.
	Writes int
	// Deletes is the deletes that alert. Default DefaultMassDeletes.
	Deletes int
	// Patients is the distinct patients written to that alert. Default
	// DefaultMassPatients.
	Patients int
	// MaxUsers bounds the users tracked at once. Default 10000.
	MaxUsers int

	st        massState
	nextPrune time.Time
}

type massState struct {
	Users map[string]*massUser `json:"users"`
}

type massUser struct {
	Writes   slidingCount `json:"w"`
	Deletes  slidingCount `json:"d"`
	Patients []seenAt     `json:"p,omitempty"` // distinct patients written to within the window
	Episode  time.Time    `json:"e,omitzero"`
	Last     time.Time    `json:"l"`
	Shown    int          `json:"s,omitempty"` // patients named in the episode's findings so far
}

// maxMassPatients bounds the patients a mass-change alert names; the
// evidence entries name them all. A privacy officer restores, or
// notifies, every record a mass change touched, so the alert names
// them, up to this many.
const maxMassPatients = 1000

// NewMassChange returns the rule with default settings.
func NewMassChange() *MassChange {
	return &MassChange{Window: DefaultMassWindow, Writes: DefaultMassWrites, Deletes: DefaultMassDeletes, Patients: DefaultMassPatients,
		MaxUsers: defaultMaxTrackedAuth, st: massState{Users: map[string]*massUser{}}}
}

// Name implements Rule.
func (r *MassChange) Name() string { return RuleMassChange }

// Observe implements Rule.
func (r *MassChange) Observe(x *Context, ev *Event) {
	del := ev.Action == phivault.ActionDelete
	if !del && ev.Action != phivault.ActionUpdate || ev.User == "" {
		return
	}
	t := ev.Time
	if pruneDue(&r.nextPrune, t, r.Window) {
		for id, u := range r.st.Users {
			if t.Sub(u.Last) > 2*r.Window {
				delete(r.st.Users, id)
			}
		}
	}
	u := r.st.Users[ev.User]
	if u == nil {
		if len(r.st.Users) >= r.MaxUsers {
			return
		}
		u = &massUser{}
		r.st.Users[ev.User] = u
	}
	if !u.Episode.IsZero() && t.Sub(u.Last) > r.Window {
		u.Episode = time.Time{}
	}
	u.Last = t
	writes := u.Writes.add(t, r.Window, 1)
	deletes := u.Deletes.at(t, r.Window)
	if del {
		deletes = u.Deletes.add(t, r.Window, 1)
	}
	for _, p := range ev.Patients {
		u.Patients = trackAccount(u.Patients, p, t, r.Window, max(r.Patients, 1))
	}
	manyWrites, manyDeletes, manyPatients := writes >= float64(r.Writes), deletes >= float64(r.Deletes), len(u.Patients) >= r.Patients
	if u.Episode.IsZero() {
		if !manyWrites && !manyDeletes && !manyPatients {
			return
		}
		u.Episode, u.Shown = t, 0
	}
	var patients []string
	if u.Shown == 0 {
		// The episode's first finding names the patients written to
		// within the window, which made the pattern, not only this
		// event's.
		for _, p := range u.Patients {
			patients = append(patients, p.ID)
		}
		u.Shown = len(patients)
	} else if u.Shown < maxMassPatients {
		patients = ev.Patients
		u.Shown += len(patients)
	}
	sev, score := SeverityHigh, 75
	if manyDeletes {
		sev, score = SeverityCritical, 90
	}
	x.Report(Finding{
		Rule: r.Name(), Key: episodeKey(ev.User, u.Episode), Severity: sev, Score: score, User: ev.User, Patients: patients,
		Why: fmt.Sprintf("User %s attempted about %.0f updates and deletes, %.0f of them deletes, touching %d distinct patients within %s (thresholds %d writes, %d deletes, %d patients): a mass-change pattern like ransomware's.",
			ev.User, writes, deletes, len(u.Patients), r.Window, r.Writes, r.Deletes, r.Patients),
	})
}

// MarshalState implements Stateful.
func (r *MassChange) MarshalState() ([]byte, error) { return json.Marshal(&r.st) }

// UnmarshalState implements Stateful.
func (r *MassChange) UnmarshalState(b []byte) error {
	st := massState{}
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", r.Name(), err)
	}
	if st.Users == nil {
		st.Users = map[string]*massUser{}
	}
	r.st = st
	return nil
}
