package detect

// Rules about sign-in: bursts of failed logins, credential stuffing,
// password spraying, new sources, impossible travel and sign-ins of
// suspended accounts. See docs/detection.md, "Rules about sign-in and
// control changes".
//
// What the trail holds about a sign-in (oauth.Server.audit): a login entry
// with Actor the account id — for a failure, the id of the account the
// submitted username names, or "" if it names none (the username itself
// is never recorded) —, Client the OAuth client, Source the remote
// address, Outcome "ok" or the error code, and Decision the refusal
// reason. Outcome "unauthorized" is a wrong or unknown credential (or a
// locked account); "forbidden" means the credentials were right but the
// sign-in was refused (no second factor, account not active, no scope);
// "unavailable" means the credentials were not checked at all (the
// password hashing pool was busy). FromEntry maps a login with any outcome
// but "ok" to ActionLoginFailed.

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/phivault/phivault"
)

func authRules() []Rule {
	return []Rule{
		NewFailedLoginBurst(),
		NewCredentialStuffing(),
		NewPasswordSpraying(),
		NewNewSource(),
		NewImpossibleTravel(),
		NewSuspendedSignIn(),
	}
}

// Names of the sign-in rules.
const (
	RuleFailedLoginBurst    = "failed-login-burst"
	RuleCredentialStuffing  = "credential-stuffing"
	RulePasswordSpraying    = "password-spraying"
	RuleNewSource           = "new-source"
	RuleImpossibleTravel    = "impossible-travel"
	RuleSuspendedSignIn     = "suspended-signin"
	defaultMaxTrackedAuth   = 10000
	defaultMaxTrackedPeople = 100000
)

// credentialFailure reports whether ev is a sign-in refused for a wrong or
// unknown credential. Refusals after the credentials were checked
// ("forbidden": no second factor, account not active) and attempts whose
// credentials were never checked ("unavailable") do not count: they say
// nothing about someone guessing.
func credentialFailure(ev *Event) bool {
	if ev.Action != ActionLoginFailed && (ev.Action != phivault.ActionLogin || ev.OK) {
		return false
	}
	return ev.Outcome != phivault.EUNAVAILABLE && ev.Outcome != phivault.EFORBIDDEN
}

// signIn reports whether ev is a successful sign-in.
func signIn(ev *Event) bool { return ev.Action == phivault.ActionLogin && ev.OK }

// episodeKey is the alert key of an episode of subject that began at
// start: findings of one episode merge into one alert, a later episode
// is a new alert.
func episodeKey(subject string, start time.Time) string {
	return subject + "|" + start.UTC().Format(time.RFC3339)
}

// utcDayKey is the alert key of subject on the UTC day of t.
func utcDayKey(subject string, t time.Time) string {
	return subject + "|" + t.UTC().Format(time.DateOnly)
}

// pruneDue reports whether a scan for stale state is due at t, every
// every, and if so moves next on.
func pruneDue(next *time.Time, t time.Time, every time.Duration) bool {
	if !next.IsZero() && t.Before(*next) {
		return false
	}
	*next = t.Add(every)
	return true
}

// slidingCount estimates how many events fell in the last window from
// two aligned buckets (the current and the previous window), weighting
// the previous one by how much of it still overlaps: constant memory, no
// allocation.
type slidingCount struct {
	Bucket int64   `json:"b"` // index of the current bucket: UnixNano / window
	Cur    float64 `json:"c"`
	Prev   float64 `json:"p"`
}

// add counts n events at t and returns the estimate at t.
func (c *slidingCount) add(t time.Time, window time.Duration, n float64) float64 {
	window = max(window, 1)
	c.roll(t, window)
	c.Cur += n
	return c.at(t, window)
}

func (c *slidingCount) roll(t time.Time, window time.Duration) {
	b := t.UnixNano() / int64(window)
	switch {
	case b == c.Bucket || b < c.Bucket: // same bucket, or a late event: count it in the current one
	case b == c.Bucket+1:
		c.Prev, c.Cur, c.Bucket = c.Cur, 0, b
	default:
		c.Prev, c.Cur, c.Bucket = 0, 0, b
	}
}

// at returns the estimate at t without counting anything.
func (c *slidingCount) at(t time.Time, window time.Duration) float64 {
	window = max(window, 1)
	b := t.UnixNano() / int64(window)
	switch {
	case b <= c.Bucket:
		frac := float64(t.UnixNano()-c.Bucket*int64(window)) / float64(window)
		return c.Prev*(1-max(0, frac)) + c.Cur
	case b == c.Bucket+1:
		frac := float64(t.UnixNano()-b*int64(window)) / float64(window)
		return c.Cur * (1 - frac)
	}
	return 0
}

// ---------------------------------------------------------------------
// failed-login-burst

// Defaults of FailedLoginBurst.
const (
	DefaultBurstFailures = 5
	DefaultBurstWindow   = 10 * time.Minute
)

// FailedLoginBurst alerts when one account fails to sign in Failures
// times within Window: someone guessing its password. A successful
// sign-in of the account soon after a burst raises the alert to high.
// Failures that name no account (an unknown username, Actor "") are left
// to CredentialStuffing. Key: account|first failure of the burst.
type FailedLoginBurst struct {
	// Failures is how many failures within Window make a burst. Default
	// DefaultBurstFailures.
	Failures int
	// Window is how close together they must be. Default
	// DefaultBurstWindow; a burst lasts while failures keep coming within
	// Window of each other.
	Window time.Duration
	// MaxAccounts bounds the accounts tracked at once; failures of further
	// accounts are not tracked until stale ones are pruned. Default 10000.
	MaxAccounts int

	st        burstState
	nextPrune time.Time
}

type burstState struct {
	Accounts map[string]*burstAccount `json:"accounts"`
}

type burstAccount struct {
	Times   []time.Time `json:"t"`           // the latest failures, at most Failures, oldest first
	Episode time.Time   `json:"e,omitzero"`  // first failure of the burst alerted on, or zero
	Last    time.Time   `json:"l"`           // latest failure
	N       int         `json:"n,omitempty"` // failures in the episode
	Success bool        `json:"s,omitempty"` // a success followed the episode
}

// NewFailedLoginBurst returns the rule with default settings.
func NewFailedLoginBurst() *FailedLoginBurst {
	return &FailedLoginBurst{Failures: DefaultBurstFailures, Window: DefaultBurstWindow, MaxAccounts: defaultMaxTrackedAuth,
		st: burstState{Accounts: map[string]*burstAccount{}}}
}

// Name implements Rule.
func (r *FailedLoginBurst) Name() string { return RuleFailedLoginBurst }

// Observe implements Rule.
func (r *FailedLoginBurst) Observe(x *Context, ev *Event) {
	switch {
	case ev.User == "":
		return
	case credentialFailure(ev):
		r.failure(x, ev)
	case signIn(ev):
		a := r.st.Accounts[ev.User]
		if a == nil || a.Episode.IsZero() || a.Success || ev.Time.Sub(a.Last) > r.Window {
			return
		}
		a.Success = true
		x.Report(Finding{
			Rule: r.Name(), Key: episodeKey(ev.User, a.Episode), Severity: SeverityHigh, Score: 80, User: ev.User,
			Why: fmt.Sprintf("Account %s signed in successfully from %s %s after %d failed sign-ins since %s: the password may have been guessed.",
				ev.User, sourceOrUnknown(ev.Source), ev.Time.Sub(a.Last).Round(time.Second), a.N, a.Episode.UTC().Format(time.RFC3339)),
		})
	}
}

func (r *FailedLoginBurst) failure(x *Context, ev *Event) {
	t, n := ev.Time, max(r.Failures, 1)
	if pruneDue(&r.nextPrune, t, r.Window) {
		for id, a := range r.st.Accounts {
			if t.Sub(a.Last) > r.Window {
				delete(r.st.Accounts, id)
			}
		}
	}
	a := r.st.Accounts[ev.User]
	if a == nil {
		if len(r.st.Accounts) >= r.MaxAccounts {
			return
		}
		a = &burstAccount{Times: make([]time.Time, 0, n)}
		r.st.Accounts[ev.User] = a
	}
	if !a.Episode.IsZero() && t.Sub(a.Last) > r.Window {
		a.Episode, a.N, a.Success = time.Time{}, 0, false
	}
	a.Last = t
	if len(a.Times) >= n {
		copy(a.Times, a.Times[len(a.Times)-n+1:])
		a.Times = a.Times[:n-1]
	}
	a.Times = append(a.Times, t)
	switch {
	case !a.Episode.IsZero():
		a.N++
	case len(a.Times) >= n && t.Sub(a.Times[0]) <= r.Window:
		a.Episode, a.N = a.Times[0], n
	default:
		return
	}
	x.Report(Finding{
		Rule: r.Name(), Key: episodeKey(ev.User, a.Episode), Severity: SeverityMedium, Score: min(100, 40+2*a.N), User: ev.User,
		Why: fmt.Sprintf("Account %s failed to sign in %d times since %s (threshold %d within %s); latest from %s.",
			ev.User, a.N, a.Episode.UTC().Format(time.RFC3339), n, r.Window, sourceOrUnknown(ev.Source)),
	})
}

// MarshalState implements Stateful.
func (r *FailedLoginBurst) MarshalState() ([]byte, error) { return json.Marshal(&r.st) }

// UnmarshalState implements Stateful.
func (r *FailedLoginBurst) UnmarshalState(b []byte) error {
	st := burstState{}
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", r.Name(), err)
	}
	if st.Accounts == nil {
		st.Accounts = map[string]*burstAccount{}
	}
	r.st = st
	return nil
}

func sourceOrUnknown(s string) string {
	if s == "" {
		return "an unknown address"
	}
	return s
}

// ---------------------------------------------------------------------
// credential-stuffing

// Defaults of CredentialStuffing.
const (
	DefaultStuffingAccounts     = 10
	DefaultStuffingUnknown      = 20
	DefaultStuffingWindow       = time.Hour
	DefaultStuffingFailureShare = 0.5
)

// CredentialStuffing alerts when one source address fails to sign in as
// many distinct accounts within a window: a list of stolen credentials
// tried one after another. Failures naming no account (unknown usernames)
// count separately. Sources where most sign-ins succeed (a clinic's
// shared proxy at shift change, where a few typos are normal) do not
// alert. A successful sign-in from the source during an episode is
// critical: a credential on the list worked. Key: source|first failure of
// the episode.
type CredentialStuffing struct {
	// Accounts is how many distinct accounts failing from one source within
	// Window alert. Default DefaultStuffingAccounts.
	Accounts int
	// Unknown is how many failures naming no account from one source within
	// Window alert. Default DefaultStuffingUnknown.
	Unknown int
	// Window is the sliding window. Default DefaultStuffingWindow.
	Window time.Duration
	// FailureShare is the least share of failed sign-ins among all
	// sign-ins from the source within Window for an alert. Default
	// DefaultStuffingFailureShare.
	FailureShare float64
	// MaxSources bounds the sources tracked at once. Default 10000.
	MaxSources int

	st        stuffState
	nextPrune time.Time
}

type stuffState struct {
	Sources map[string]*stuffSource `json:"sources"`
}

type stuffSource struct {
	Accounts []seenAt     `json:"a,omitempty"` // distinct named accounts failing within the window
	Unknown  slidingCount `json:"u"`           // failures naming no account
	Fails    slidingCount `json:"f"`
	OK       slidingCount `json:"o"`
	Episode  time.Time    `json:"e,omitzero"`
	Last     time.Time    `json:"l"`
}

// seenAt is an id and when it was last seen.
type seenAt struct {
	ID string    `json:"id"`
	T  time.Time `json:"t"`
}

// NewCredentialStuffing returns the rule with default settings.
func NewCredentialStuffing() *CredentialStuffing {
	return &CredentialStuffing{Accounts: DefaultStuffingAccounts, Unknown: DefaultStuffingUnknown, Window: DefaultStuffingWindow,
		FailureShare: DefaultStuffingFailureShare, MaxSources: defaultMaxTrackedAuth, st: stuffState{Sources: map[string]*stuffSource{}}}
}

// Name implements Rule.
func (r *CredentialStuffing) Name() string { return RuleCredentialStuffing }

// Observe implements Rule.
func (r *CredentialStuffing) Observe(x *Context, ev *Event) {
	fail := credentialFailure(ev)
	if ev.Source == "" || (!fail && !signIn(ev)) {
		return
	}
	t := ev.Time
	if pruneDue(&r.nextPrune, t, r.Window) {
		for s, v := range r.st.Sources {
			if t.Sub(v.Last) > 2*r.Window {
				delete(r.st.Sources, s)
			}
		}
	}
	s := r.st.Sources[ev.Source]
	if s == nil {
		if len(r.st.Sources) >= r.MaxSources {
			return
		}
		s = &stuffSource{}
		r.st.Sources[ev.Source] = s
	}
	s.Last = t
	if !fail {
		s.OK.add(t, r.Window, 1)
		if s.Episode.IsZero() || t.Sub(s.Episode) > r.Window || ev.User == "" {
			return
		}
		x.Report(Finding{
			Rule: r.Name(), Key: episodeKey(ev.Source, s.Episode), Severity: SeverityCritical, Score: 95, User: ev.User,
			Why: fmt.Sprintf("Account %s signed in successfully from %s while that source was trying a list of credentials (%d accounts failed from it within %s): a credential on the list worked.",
				ev.User, ev.Source, len(s.Accounts), r.Window),
		})
		return
	}
	fails := s.Fails.add(t, r.Window, 1)
	unknown := s.Unknown.at(t, r.Window)
	if ev.User == "" {
		unknown = s.Unknown.add(t, r.Window, 1)
	} else {
		s.Accounts = trackAccount(s.Accounts, ev.User, t, r.Window, max(r.Accounts, 1)*4)
	}
	if !s.Episode.IsZero() && t.Sub(s.Episode) > r.Window && len(s.Accounts) < r.Accounts && unknown < float64(r.Unknown) {
		s.Episode = time.Time{}
	}
	if s.Episode.IsZero() {
		ok := s.OK.at(t, r.Window)
		if len(s.Accounts) < r.Accounts && unknown < float64(r.Unknown) || fails/(fails+ok) < r.FailureShare {
			return
		}
		s.Episode = t
		for _, a := range s.Accounts {
			if a.T.Before(s.Episode) {
				s.Episode = a.T
			}
		}
	}
	x.Report(Finding{
		Rule: r.Name(), Key: episodeKey(ev.Source, s.Episode), Severity: SeverityHigh, Score: min(100, 60+len(s.Accounts)+int(unknown)/2),
		Why: fmt.Sprintf("Source %s failed to sign in %s within %s (%.0f%% of its sign-ins failed): a list of credentials being tried.",
			ev.Source, stuffingText(len(s.Accounts), unknown), r.Window, 100*fails/(fails+s.OK.at(t, r.Window))),
	})
}

func stuffingText(accounts int, unknown float64) string {
	named := fmt.Sprintf("as %d distinct accounts", accounts)
	other := fmt.Sprintf("%.0f times with usernames that name no account", unknown)
	switch {
	case unknown < 0.5:
		return named
	case accounts == 0:
		return other
	}
	return named + " and " + other
}

// trackAccount updates id's time in list, dropping entries older than
// window, keeping at most limit.
func trackAccount(list []seenAt, id string, t time.Time, window time.Duration, limit int) []seenAt {
	found := false
	j := 0
	for _, a := range list {
		if a.ID == id {
			a.T, found = t, true
		}
		if t.Sub(a.T) <= window {
			list[j] = a
			j++
		}
	}
	list = list[:j]
	if !found && len(list) < limit {
		list = append(list, seenAt{ID: id, T: t})
	}
	return list
}

// MarshalState implements Stateful.
func (r *CredentialStuffing) MarshalState() ([]byte, error) { return json.Marshal(&r.st) }

// UnmarshalState implements Stateful.
func (r *CredentialStuffing) UnmarshalState(b []byte) error {
	st := stuffState{}
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", r.Name(), err)
	}
	if st.Sources == nil {
		st.Sources = map[string]*stuffSource{}
	}
	r.st = st
	return nil
}

// ---------------------------------------------------------------------
// password-spraying

// Defaults of PasswordSpraying.
const (
	DefaultSprayAccounts   = 15
	DefaultSprayPerAccount = 2
	DefaultSpraySources    = 3
	DefaultSprayWindow     = time.Hour
)

// PasswordSpraying alerts when failures spread thin and wide: within
// Window, at least Accounts accounts each failed to sign in only 1 to
// PerAccount times, none of them signed in successfully since, and the
// failures came from at least Sources source addresses. That is one or
// two common passwords tried against every account, slowly enough to stay
// under each account's lockout. The trail never holds passwords: the rule
// sees only the spread of failures. A typo followed by a successful
// sign-in never counts. Key: "spray"|first failure of the episode.
type PasswordSpraying struct {
	// Accounts is how many thinly failing accounts alert. Default
	// DefaultSprayAccounts.
	Accounts int
	// PerAccount is the most failures an account may have within Window
	// to count as thin. Default DefaultSprayPerAccount.
	PerAccount int
	// Sources is the least number of distinct source addresses of those
	// failures. Default DefaultSpraySources.
	Sources int
	// Window is how long an account's first failure counts. Default
	// DefaultSprayWindow.
	Window time.Duration
	// MaxAccounts bounds the accounts tracked at once. Default 10000.
	MaxAccounts int

	st sprayState
	// Derived from st (rebuilt by UnmarshalState).
	queue  []sprayQueued // accounts by first failure, from head
	head   int
	srcRef map[string]int // sources of thin accounts → how many thin accounts
	thin   []int          // thin accounts by failures (index 1..PerAccount)
}

type sprayState struct {
	Accounts map[string]*sprayAccount `json:"accounts"`
	Episode  time.Time                `json:"episode,omitzero"`
	Last     time.Time                `json:"last,omitzero"`
}

type sprayAccount struct {
	First     time.Time `json:"f"`
	Fails     int       `json:"n"`
	Sources   []string  `json:"s,omitempty"` // distinct, at most PerAccount
	Recovered bool      `json:"r,omitempty"` // signed in successfully since
}

type sprayQueued struct {
	id    string
	first time.Time
}

// NewPasswordSpraying returns the rule with default settings.
func NewPasswordSpraying() *PasswordSpraying {
	return &PasswordSpraying{Accounts: DefaultSprayAccounts, PerAccount: DefaultSprayPerAccount, Sources: DefaultSpraySources,
		Window: DefaultSprayWindow, MaxAccounts: defaultMaxTrackedAuth, st: sprayState{Accounts: map[string]*sprayAccount{}}}
}

// Name implements Rule.
func (r *PasswordSpraying) Name() string { return RulePasswordSpraying }

func (r *PasswordSpraying) isThin(a *sprayAccount) bool {
	return a.Fails >= 1 && a.Fails <= r.PerAccount && !a.Recovered
}

// count adds (d = 1) or removes (d = -1) a's part in the spread.
func (r *PasswordSpraying) count(a *sprayAccount, d int) {
	if r.srcRef == nil {
		r.srcRef = map[string]int{}
	}
	if len(r.thin) != max(r.PerAccount, 0)+1 {
		r.thin = make([]int, max(r.PerAccount, 0)+1)
	}
	r.thin[a.Fails] += d
	for _, s := range a.Sources {
		if r.srcRef[s] += d; r.srcRef[s] <= 0 {
			delete(r.srcRef, s)
		}
	}
}

func (r *PasswordSpraying) thinAccounts() int {
	n := 0
	for _, c := range r.thin {
		n += c
	}
	return n
}

// Observe implements Rule.
func (r *PasswordSpraying) Observe(x *Context, ev *Event) {
	switch {
	case ev.User == "":
	case credentialFailure(ev):
		r.failure(x, ev)
	case signIn(ev):
		if a := r.st.Accounts[ev.User]; a != nil && !a.Recovered {
			if r.isThin(a) {
				r.count(a, -1)
			}
			a.Recovered = true
		}
	}
}

func (r *PasswordSpraying) failure(x *Context, ev *Event) {
	t := ev.Time
	r.expire(t)
	a := r.st.Accounts[ev.User]
	if a == nil {
		if len(r.st.Accounts) >= r.MaxAccounts {
			return
		}
		a = &sprayAccount{First: t}
		r.st.Accounts[ev.User] = a
		r.queue = append(r.queue, sprayQueued{id: ev.User, first: t})
	}
	if r.isThin(a) {
		r.count(a, -1)
	}
	a.Fails++
	if ev.Source != "" && len(a.Sources) < r.PerAccount && !slices.Contains(a.Sources, ev.Source) {
		a.Sources = append(a.Sources, ev.Source)
	}
	if r.isThin(a) {
		r.count(a, 1)
	}
	n := r.thinAccounts()
	if !r.st.Episode.IsZero() && t.Sub(r.st.Last) > r.Window {
		r.st.Episode = time.Time{}
	}
	if r.st.Episode.IsZero() {
		if n < r.Accounts || len(r.srcRef) < r.Sources {
			return
		}
		r.st.Episode = t
		for _, q := range r.queue[r.head:] {
			if b := r.st.Accounts[q.id]; b != nil && b.First.Equal(q.first) && r.isThin(b) {
				r.st.Episode = q.first
				break
			}
		}
	}
	if !r.isThin(a) {
		return // this failure is not part of the spread
	}
	r.st.Last = t
	spread := ""
	for i := 1; i < len(r.thin); i++ {
		if spread != "" {
			spread += ", "
		}
		spread += strconv.Itoa(r.thin[i]) + " " + timesText(i)
	}
	x.Report(Finding{
		Rule: r.Name(), Key: episodeKey("spray", r.st.Episode), Severity: SeverityHigh, Score: min(100, 50+n),
		Why: fmt.Sprintf("%d accounts failed to sign in only a few times each (%s) within %s, from %d source addresses, and none signed in successfully since: failures spread thin across many accounts, the pattern of a few passwords tried against every account.",
			n, spread, r.Window, len(r.srcRef)),
	})
}

func timesText(i int) string {
	switch i {
	case 1:
		return "once"
	case 2:
		return "twice"
	}
	return strconv.Itoa(i) + " times"
}

// expire forgets accounts whose first failure is older than Window.
func (r *PasswordSpraying) expire(t time.Time) {
	for r.head < len(r.queue) && t.Sub(r.queue[r.head].first) > r.Window {
		q := r.queue[r.head]
		r.queue[r.head] = sprayQueued{}
		r.head++
		if a := r.st.Accounts[q.id]; a != nil && a.First.Equal(q.first) {
			if r.isThin(a) {
				r.count(a, -1)
			}
			delete(r.st.Accounts, q.id)
		}
	}
	if r.head > 1024 && r.head > len(r.queue)/2 {
		r.queue = append(r.queue[:0], r.queue[r.head:]...)
		r.head = 0
	}
}

// MarshalState implements Stateful.
func (r *PasswordSpraying) MarshalState() ([]byte, error) { return json.Marshal(&r.st) }

// UnmarshalState implements Stateful.
func (r *PasswordSpraying) UnmarshalState(b []byte) error {
	st := sprayState{}
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", r.Name(), err)
	}
	if st.Accounts == nil {
		st.Accounts = map[string]*sprayAccount{}
	}
	r.st, r.queue, r.head, r.srcRef, r.thin = st, nil, 0, nil, nil
	for id, a := range st.Accounts {
		r.queue = append(r.queue, sprayQueued{id: id, first: a.First})
		if r.isThin(a) {
			r.count(a, 1)
		}
	}
	sortQueue(r.queue)
	return nil
}

func sortQueue(q []sprayQueued) {
	for i := 1; i < len(q); i++ { // insertion sort keeps ties stable; the queue is bounded
		for j := i; j > 0 && (q[j].first.Before(q[j-1].first) || q[j].first.Equal(q[j-1].first) && q[j].id < q[j-1].id); j-- {
			q[j], q[j-1] = q[j-1], q[j]
		}
	}
}

// ---------------------------------------------------------------------
// new-source

// Defaults of NewSource.
const (
	DefaultNewSourceLearning   = 7 * 24 * time.Hour
	DefaultNewSourceMinSignIns = 5
	DefaultNewSourceMaxNets    = 32
	DefaultNewSourceForget     = 180 * 24 * time.Hour
	// DefaultNewSourcePeerAccounts is the other accounts of a department
	// that make an internal network known to it.
	DefaultNewSourcePeerAccounts = 2
	// DefaultNewSourcePeerNets bounds the internal networks kept per
	// department.
	DefaultNewSourcePeerNets = 1024
)

// NewSource alerts, at low severity, when an account signs in
// successfully from a network it has never signed in from: an IPv4 /24 or
// an IPv6 /48 around the source address. It learns first: an account
// alerts only once it was first seen Learning ago and has MinSignIns
// earlier sign-ins. An internal network (private addresses) from which
// PeerAccounts other accounts of the same department (the directory's,
// or the one the event states: a float nurse's ward of the day) signed
// in is not new either: a ward's workstations. Key: account|network.
type NewSource struct {
	// Learning is how long after an account's first sign-in it starts to
	// alert. Default DefaultNewSourceLearning.
	Learning time.Duration
	// MinSignIns is how many sign-ins an account needs before it alerts.
	// Default DefaultNewSourceMinSignIns.
	MinSignIns int
	// MaxNets bounds the networks kept per account; the least recently
	// used is forgotten first. Default DefaultNewSourceMaxNets.
	MaxNets int
	// Forget drops accounts with no sign-in for this long. Default
	// DefaultNewSourceForget.
	Forget time.Duration
	// MaxAccounts bounds the accounts tracked. Default 100000.
	MaxAccounts int
	// PeerAccounts is the other accounts of a department whose
	// sign-ins from an internal network make it known to the
	// department. Default DefaultNewSourcePeerAccounts; 0 turns peer
	// networks off. Public networks are never known this way: several
	// colleagues on one public network may be one attacker with several
	// of their passwords.
	PeerAccounts int
	// PeerNets bounds the internal networks kept per department. Default
	// DefaultNewSourcePeerNets.
	PeerNets int

	st        newSourceState
	nextPrune time.Time
}

type newSourceState struct {
	Accounts map[string]*nsAccount `json:"accounts"`
	// Depts holds, per department, the internal networks its accounts
	// signed in from.
	Depts map[string]map[netip.Prefix]*nsPeerNet `json:"depts,omitempty"`
}

// nsPeerNet is a department's internal network: the first accounts
// seen on it (at most PeerAccounts+1) and its last sign-in.
type nsPeerNet struct {
	Accounts []string  `json:"a"`
	Last     time.Time `json:"l"`
}

type nsAccount struct {
	First time.Time `json:"f"`
	Last  time.Time `json:"l"`
	N     int       `json:"n"`
	Nets  []nsNet   `json:"nets"`
}

type nsNet struct {
	P    netip.Prefix `json:"p"`
	Last time.Time    `json:"l"`
}

// NewNewSource returns the rule with default settings.
func NewNewSource() *NewSource {
	return &NewSource{Learning: DefaultNewSourceLearning, MinSignIns: DefaultNewSourceMinSignIns, MaxNets: DefaultNewSourceMaxNets,
		Forget: DefaultNewSourceForget, MaxAccounts: defaultMaxTrackedPeople, PeerAccounts: DefaultNewSourcePeerAccounts,
		PeerNets: DefaultNewSourcePeerNets, st: newSourceState{Accounts: map[string]*nsAccount{}}}
}

// Name implements Rule.
func (r *NewSource) Name() string { return RuleNewSource }

// sourceNetwork returns the /24 (IPv4) or /48 (IPv6) around address s.
func sourceNetwork(s string) (netip.Prefix, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	a = a.Unmap().WithZone("")
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	return p, err == nil
}

// Observe implements Rule.
func (r *NewSource) Observe(x *Context, ev *Event) {
	if ev.User == "" || !signIn(ev) {
		return
	}
	p, ok := sourceNetwork(ev.Source)
	if !ok {
		return
	}
	t := ev.Time
	if pruneDue(&r.nextPrune, t, 24*time.Hour) {
		for id, a := range r.st.Accounts {
			if t.Sub(a.Last) > r.Forget {
				delete(r.st.Accounts, id)
			}
		}
		for d, nets := range r.st.Depts {
			for p, n := range nets {
				if t.Sub(n.Last) > r.Forget {
					delete(nets, p)
				}
			}
			if len(nets) == 0 {
				delete(r.st.Depts, d)
			}
		}
	}
	peerKnown := r.peers(x, ev, p, t)
	a := r.st.Accounts[ev.User]
	if a == nil {
		if len(r.st.Accounts) >= r.MaxAccounts {
			return
		}
		a = &nsAccount{First: t}
		r.st.Accounts[ev.User] = a
	}
	defer func() { a.N++; a.Last = t }()
	oldest := -1
	for i := range a.Nets {
		if a.Nets[i].P == p {
			a.Nets[i].Last = t
			return
		}
		if oldest < 0 || a.Nets[i].Last.Before(a.Nets[oldest].Last) {
			oldest = i
		}
	}
	if len(a.Nets) >= max(r.MaxNets, 1) {
		a.Nets[oldest] = nsNet{P: p, Last: t}
	} else {
		a.Nets = append(a.Nets, nsNet{P: p, Last: t})
	}
	if a.N < r.MinSignIns || t.Sub(a.First) < r.Learning || peerKnown {
		return
	}
	x.Report(Finding{
		Rule: r.Name(), Key: ev.User + "|" + p.String(), Severity: SeverityLow, Score: 30, User: ev.User,
		Why: fmt.Sprintf("Account %s signed in from network %s (address %s), which it had not used in its %d sign-ins since %s.",
			ev.User, p, ev.Source, a.N, a.First.UTC().Format(time.DateOnly)),
	})
}

// peers reports whether internal network p is known to the departments
// of ev's account, from PeerAccounts other accounts, and records the
// sign-in there.
func (r *NewSource) peers(x *Context, ev *Event, p netip.Prefix, t time.Time) bool {
	if r.PeerAccounts <= 0 || !privateAddr(p.Addr()) {
		return false
	}
	depts := [2]string{ev.Department}
	if x.Dir != nil {
		if u := x.user(ev); u != nil && u.Department != ev.Department {
			depts[1] = u.Department
		}
	}
	known := false
	for _, d := range depts {
		if d == "" {
			continue
		}
		if r.st.Depts == nil {
			r.st.Depts = map[string]map[netip.Prefix]*nsPeerNet{}
		}
		nets := r.st.Depts[d]
		if nets == nil {
			nets = map[netip.Prefix]*nsPeerNet{}
			r.st.Depts[d] = nets
		}
		n := nets[p]
		if n == nil {
			if len(nets) >= max(r.PeerNets, 1) {
				continue
			}
			n = &nsPeerNet{}
			nets[p] = n
		}
		n.Last = t
		others := len(n.Accounts)
		if slices.Contains(n.Accounts, ev.User) {
			others--
		} else if len(n.Accounts) <= r.PeerAccounts {
			n.Accounts = append(n.Accounts, ev.User)
		}
		known = known || others >= r.PeerAccounts
	}
	return known
}

// MarshalState implements Stateful.
func (r *NewSource) MarshalState() ([]byte, error) { return json.Marshal(&r.st) }

// UnmarshalState implements Stateful.
func (r *NewSource) UnmarshalState(b []byte) error {
	st := newSourceState{}
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", r.Name(), err)
	}
	if st.Accounts == nil {
		st.Accounts = map[string]*nsAccount{}
	}
	r.st = st
	return nil
}

// ---------------------------------------------------------------------
// impossible-travel

// Locator places an address on the globe, for ImpossibleTravel: a GeoIP
// database, say. It returns ok false for an address it cannot place. It
// is called from the engine's goroutine only.
type Locator interface {
	Locate(addr netip.Addr) (lat, lon float64, ok bool)
}

// Defaults of ImpossibleTravel.
const (
	DefaultTravelWindow   = 5 * time.Minute
	DefaultTravelSpeedKmh = 1000
	DefaultTravelMinKm    = 300
	DefaultTravelHorizon  = 24 * time.Hour
)

// ImpossibleTravel alerts when an account signs in successfully from two
// sources too far apart in too little time.
//
// phivault has no geolocation database, so by default "far" is network
// distance, a proxy: two successful sign-ins of the same account within
// Window whose addresses are in different IPv4 /16 or IPv6 /32 networks,
// or of which one is private (RFC 1918, RFC 4193, loopback, link-local,
// carrier-grade NAT) and the other public. Two private addresses are
// never far (a clinic's own networks), nor are an IPv4 and an IPv6
// address (dual-stack hosts switch between them). It is a proxy: two
// providers in one city are "far", a VPN exit is "near" anything.
//
// With a Locator, sign-ins both placed are compared by great-circle
// distance instead: at least MinKm apart at more than SpeedKmh, within
// Horizon. Key: account|UTC day.
type ImpossibleTravel struct {
	// Window is how close in time two sign-ins from networks far apart
	// must be. Default DefaultTravelWindow.
	Window time.Duration
	// Trusted lists networks whose sign-ins are ignored: a VPN or proxy
	// that hands out addresses far from the user's. Default none.
	Trusted []netip.Prefix
	// Locator, if set, places addresses; default nil (network distance).
	Locator Locator
	// SpeedKmh is the least speed between two placed sign-ins that
	// alerts. Default DefaultTravelSpeedKmh.
	SpeedKmh float64
	// MinKm is the least distance between two placed sign-ins that alerts.
	// Default DefaultTravelMinKm.
	MinKm float64
	// Horizon is how long the last sign-in is compared with. Default
	// DefaultTravelHorizon.
	Horizon time.Duration
	// MaxAccounts bounds the accounts tracked. Default 100000.
	MaxAccounts int

	st        travelState
	nextPrune time.Time
}

type travelState struct {
	Accounts map[string]*travelLast `json:"accounts"`
}

type travelLast struct {
	T    time.Time  `json:"t"`
	Addr netip.Addr `json:"a"`
	Ref  string     `json:"r,omitempty"`
}

// NewImpossibleTravel returns the rule with default settings.
func NewImpossibleTravel() *ImpossibleTravel {
	return &ImpossibleTravel{Window: DefaultTravelWindow, SpeedKmh: DefaultTravelSpeedKmh, MinKm: DefaultTravelMinKm,
		Horizon: DefaultTravelHorizon, MaxAccounts: defaultMaxTrackedPeople, st: travelState{Accounts: map[string]*travelLast{}}}
}

// Name implements Rule.
func (r *ImpossibleTravel) Name() string { return RuleImpossibleTravel }

// Observe implements Rule.
func (r *ImpossibleTravel) Observe(x *Context, ev *Event) {
	if ev.User == "" || !signIn(ev) {
		return
	}
	addr, err := netip.ParseAddr(ev.Source)
	if err != nil {
		return
	}
	addr = addr.Unmap().WithZone("")
	for _, p := range r.Trusted {
		if p.Contains(addr) {
			return
		}
	}
	t := ev.Time
	if pruneDue(&r.nextPrune, t, r.Horizon) {
		for id, l := range r.st.Accounts {
			if t.Sub(l.T) > max(r.Horizon, r.Window) {
				delete(r.st.Accounts, id)
			}
		}
	}
	last := r.st.Accounts[ev.User]
	if last == nil {
		if len(r.st.Accounts) >= r.MaxAccounts {
			return
		}
		last = &travelLast{}
		r.st.Accounts[ev.User] = last
	} else if why := r.far(last, addr, t); why != "" {
		x.Report(Finding{
			Rule: r.Name(), Key: utcDayKey(ev.User, t), Severity: SeverityHigh, Score: 75, User: ev.User,
			Why: fmt.Sprintf("Account %s signed in from %s %s after signing in from %s (%s): %s.",
				ev.User, addr, t.Sub(last.T).Round(time.Second), last.Addr, last.Ref, why),
		})
	}
	last.T, last.Addr, last.Ref = t, addr, ev.Ref()
}

// far says why a and the last sign-in are too far apart in too little
// time, or returns "".
func (r *ImpossibleTravel) far(last *travelLast, a netip.Addr, t time.Time) string {
	dt := t.Sub(last.T)
	if dt < 0 {
		dt = -dt
	}
	b := last.Addr
	if !b.IsValid() || a == b {
		return ""
	}
	if r.Locator != nil {
		lat1, lon1, ok1 := r.Locator.Locate(b)
		lat2, lon2, ok2 := r.Locator.Locate(a)
		if ok1 && ok2 {
			if dt > r.Horizon {
				return ""
			}
			km := greatCircleKm(lat1, lon1, lat2, lon2)
			hours := max(dt.Hours(), 1.0/60) // a minute at least: sign-ins are not instantaneous
			if km >= r.MinKm && km/hours > r.SpeedKmh {
				return fmt.Sprintf("%.0f km apart, %.0f km/h", km, km/hours)
			}
			return ""
		}
	}
	if dt > r.Window {
		return ""
	}
	pa, pb := privateAddr(a), privateAddr(b)
	switch {
	case pa != pb:
		return "one private and one public address, a network-distance proxy for locations far apart"
	case pa || a.Is4() != b.Is4():
		return ""
	case a.Is4():
		if x, y := netip.PrefixFrom(a, 16).Masked(), netip.PrefixFrom(b, 16).Masked(); x != y {
			return "different /16 networks, a network-distance proxy for locations far apart"
		}
	default:
		if x, y := netip.PrefixFrom(a, 32).Masked(), netip.PrefixFrom(b, 32).Masked(); x != y {
			return "different /32 networks, a network-distance proxy for locations far apart"
		}
	}
	return ""
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

func privateAddr(a netip.Addr) bool {
	return a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsUnspecified() || cgnat.Contains(a)
}

// greatCircleKm returns the distance between two points in km
// (haversine).
func greatCircleKm(lat1, lon1, lat2, lon2 float64) float64 {
	const earthKm = 6371.0
	rad := math.Pi / 180
	dlat, dlon := (lat2-lat1)*rad, (lon2-lon1)*rad
	h := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * earthKm * math.Asin(math.Min(1, math.Sqrt(h)))
}

// MarshalState implements Stateful.
func (r *ImpossibleTravel) MarshalState() ([]byte, error) { return json.Marshal(&r.st) }

// UnmarshalState implements Stateful.
func (r *ImpossibleTravel) UnmarshalState(b []byte) error {
	st := travelState{}
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", r.Name(), err)
	}
	if st.Accounts == nil {
		st.Accounts = map[string]*travelLast{}
	}
	r.st = st
	return nil
}

// ---------------------------------------------------------------------
// suspended-signin

// SuspendedSignIn alerts on any sign-in attempt, token request or other
// request by an account the directory says is suspended or
// deprovisioned: critical if it succeeded, medium if it was refused (the
// vault refuses them; someone still holds the credentials). Key:
// account|UTC day.
//
// It reads the directory as it stands at the event: live, that is the
// status at the time; in a replay of old entries against a freshly loaded
// directory, it is today's status.
type SuspendedSignIn struct{}

// NewSuspendedSignIn returns the rule.
func NewSuspendedSignIn() *SuspendedSignIn { return &SuspendedSignIn{} }

// Name implements Rule.
func (r *SuspendedSignIn) Name() string { return RuleSuspendedSignIn }

// Observe implements Rule.
func (r *SuspendedSignIn) Observe(x *Context, ev *Event) {
	if ev.User == "" {
		return
	}
	u := x.user(ev)
	if u == nil || u.Active() {
		return
	}
	if ev.Action == phivault.ActionAccountChange && ev.ResourceID == ev.User {
		return // the change that suspended the account itself
	}
	status := u.Status
	if ev.OK && ev.Action != ActionLoginFailed {
		x.Report(Finding{
			Rule: r.Name(), Key: utcDayKey(ev.User, ev.Time), Severity: SeverityCritical, Score: 95, User: ev.User, Patients: ev.Patients,
			Why: fmt.Sprintf("Account %s, which is %s, succeeded at %s from %s.", ev.User, status, ev.Action, sourceOrUnknown(ev.Source)),
		})
		return
	}
	x.Report(Finding{
		Rule: r.Name(), Key: utcDayKey(ev.User, ev.Time), Severity: SeverityMedium, Score: 50, User: ev.User,
		Why: fmt.Sprintf("Account %s, which is %s, attempted %s from %s and was refused.", ev.User, status, ev.Action, sourceOrUnknown(ev.Source)),
	})
}
