// Package drill plays incident-response drills against a phivault server:
// scripted attacks (a snooping user, stolen credentials, a bulk export, a
// ransomware-like mass change, a lost device with a live refresh token, a
// compromised key) whose detection and containment it measures through the
// server's own APIs, as an attacker and an officer would meet them.
//
// A [Scenario] declares what it expects: the alert rules of which one must
// fire, the playbooks expected to answer, the containment steps that must
// be done for the drill to pass ([Scenario.Required]) and the further
// steps the playbooks list ([Scenario.Expected]), which are reported but
// do not fail the drill. A step the server cannot carry out yet shows as
// "not carried out: <reason>".
//
// [Run] plays one scenario against a [Target]: the base URL, a security
// admin's (or the operator's) token, and drill accounts, whose usernames
// start with [AccountPrefix]; it refuses any other account. Against a live
// server it reads only honeytoken (decoy) patients. It returns a [Report]:
// time to detect and to contain, each step and its outcome, the evidence
// check, and pass or fail with reasons. [History] keeps the reports as
// JSON lines.
//
// Reports hold ids, rule and action names and times only: no PHI, no
// password, token or secret.
package drill

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// AccountPrefix starts the username of every drill account. A drill signs
// in only as accounts named so: against a live server an account without
// it is refused, so a drill never suspends a real person.
const AccountPrefix = "drill."

// Account is a drill account that signs in with the SMART authorization
// code flow: a password and a TOTP secret (base32).
type Account struct {
	Username string `json:"username"`
	Password string `json:"password"`
	TOTP     string `json:"totp_secret"`
}

// String returns the username only, so that printing an Account never
// shows its secrets.
func (a Account) String() string { return a.Username }

// Target is the server a drill plays against and what it plays with.
type Target struct {
	// Base is the FHIR base URL, e.g. https://vault.example.org/fhir.
	Base string
	// HTTP is the client to reach it (its TLS trust set).
	HTTP *http.Client
	// Token is a security admin's or the operator's bearer token: the
	// drill's officer, who reads alerts and incidents and acts on them.
	Token string
	// App and Redirect are the public OAuth client the drill accounts
	// sign in through (the authorization code flow with PKCE).
	App, Redirect string
	// Accounts are the drill accounts; the first plays the attacker.
	Accounts []Account
	// Decoys are honeytoken patients' ids: the only patients a drill
	// reads.
	Decoys []string
	// Live says the server is a real one: scenarios that are isolated
	// only are not played, and each drill account is restored after.
	Live bool

	steps *totpSteps // TOTP steps used, kept across runs (and copies)
}

// check refuses a target a drill must not play against.
func (t *Target) check() error {
	if t.Base == "" || t.HTTP == nil || t.Token == "" {
		return errors.New("drill: target without URL, client or token")
	}
	if len(t.Accounts) == 0 {
		return errors.New("no drill account given")
	}
	for _, a := range t.Accounts {
		if !strings.HasPrefix(a.Username, AccountPrefix) || len(a.Username) == len(AccountPrefix) {
			return &NotDrillAccountError{Username: a.Username}
		}
	}
	if len(t.Decoys) == 0 {
		return errors.New("the server has no honeytoken patients; a drill reads only those (make some with phivault honeytoken create)")
	}
	return nil
}

// NotDrillAccountError is the refusal to play with an account whose
// username does not start with AccountPrefix.
type NotDrillAccountError struct{ Username string }

func (e *NotDrillAccountError) Error() string {
	return fmt.Sprintf("%q is not a drill account: drills sign in only as accounts whose username starts with %q, so that no real person is suspended",
		e.Username, AccountPrefix)
}

// Defaults of Options.
const (
	DefaultTimeout = 30 * time.Second
	DefaultPoll    = 25 * time.Millisecond
)

// Options tune a run. The zero value is every default.
type Options struct {
	// Timeout bounds the wait for detection and for containment, each.
	// Default DefaultTimeout.
	Timeout time.Duration
	// Poll is how often the APIs are polled. Default DefaultPoll.
	Poll time.Duration
	// Evidence checks an incident's evidence bundle. Default
	// HTTPEvidence(nil): fetch it and report whether it exists.
	Evidence EvidenceVerifier
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.Evidence == nil {
		o.Evidence = HTTPEvidence(nil)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Run plays s against t and reports what happened. A drill that could not
// be played at all (the target refused, a sign-in failed) is a failed
// report with the reason, not an error; the error is for a refused target
// (not a drill account, no decoys).
func Run(ctx context.Context, t *Target, s *Scenario, o Options) (*Report, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	if t.steps == nil {
		t.steps = &totpSteps{}
	}
	r := &run{t: t, o: o, s: s, rep: &Report{Scenario: s.Name, Started: o.Now().UTC(), Live: t.Live, DetectMS: -1, ContainMS: -1,
		Containment: s.Containment, Expect: Expectation{Rules: s.Rules, Playbooks: s.Playbooks, Required: s.Required, Expected: s.Expected}}}
	if t.Live && s.IsolatedOnly != "" {
		r.rep.Skipped = s.IsolatedOnly
		r.rep.Pass = true
		return r.rep, nil
	}
	if err := s.play(ctx, r); err != nil {
		r.fail("%v", err)
	}
	if t.Live {
		r.restore(ctx)
	}
	r.rep.finish()
	return r.rep, nil
}
