package drill

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// Scenario is one drill: an attack and what the server is expected to do
// about it.
type Scenario struct {
	Name        string
	Description string
	// Rules are the alert rules of which one must fire: the detection.
	// None means the attack is reported by a person (lost-device).
	Rules []string
	// Playbooks are the default playbooks expected to answer.
	Playbooks []string
	// Required are the playbook steps that must be done for the drill to
	// pass: those the responder carries out at once.
	Required []string
	// Expected are the playbooks' further steps, reported, not required:
	// those that wait for a second person's approval (block-source,
	// block-client), or that another playbook answering the same alert
	// takes.
	Expected []string
	// Containment says in words what contained means here.
	Containment string
	// IsolatedOnly, if not "", is why the scenario is not played against
	// a live server.
	IsolatedOnly string

	play func(ctx context.Context, r *run) error
}

// Scenarios returns every scenario, in the order "all" plays them.
func Scenarios() []*Scenario {
	return []*Scenario{
		{
			Name:        "snooping",
			Description: "A drill account reads a patient it has no reason to see (a decoy: unrelated, no care relationship).",
			Rules:       []string{"honeytoken", "no-relationship", "vip-access", "coworker-access"},
			Playbooks:   []string{"honeytoken-touch"},
			Expected:    []string{"suspend-account", "revoke-sessions", "collect-evidence", "notify"},
			Containment: "alert raised (paged by the notifiers; the drill does not see the page): no default playbook answers the snooping rules (no-relationship, vip-access, coworker-access); a decoy read is also answered by honeytoken-touch, listed as expected",
			play:        tokenAttack("user/*.rs", snoop, false),
		},
		{
			Name:        "stolen-credentials",
			Description: "A drill account's credentials are used from a network far from where its owner just signed in: impossible travel.",
			Rules:       []string{"impossible-travel", "credential-stuffing", "suspended-signin"},
			Playbooks:   []string{"stolen-credentials"},
			Required:    []string{"revoke-sessions", "require-reenrolment", "notify"},
			Expected:    []string{"block-source"},
			Containment: "the sessions revoked and the credentials cleared for re-enrolment, the alert sent to the notifiers, and the thief's and the owner's tokens refused",
			// The far sign-in is played with X-Forwarded-For, which only a
			// server that trusts the drill as its proxy reads.
			IsolatedOnly: "it plays a sign-in from a far network with X-Forwarded-For, which only the throw-away vault trusts from the drill",
			play:         tokenAttack("user/*.rs", stealCredentials, true),
		},
		{
			Name:        "bulk-export",
			Description: "A drill account pulls whole records ($everything) of every decoy patient.",
			Rules:       []string{"bulk-access", "honeytoken"},
			Playbooks:   []string{"bulk-export", "honeytoken-touch"},
			Required:    []string{"suspend-account", "revoke-sessions", "collect-evidence", "notify"},
			Containment: "the account suspended, its sessions revoked, the evidence collected and the alert sent to the notifiers; its token refused",
			play:        tokenAttack("user/*.rs", bulkExport, true),
		},
		{
			Name:        "mass-update",
			Description: "A drill account deletes records in a burst, as ransomware would (ids that exist nowhere: no record is touched).",
			Rules:       []string{"mass-change"},
			Playbooks:   []string{"mass-change"},
			Required:    []string{"suspend-account", "revoke-sessions", "collect-evidence", "notify"},
			Expected:    []string{"block-client"},
			Containment: "the account suspended, its sessions revoked, the evidence collected and the alert sent to the notifiers; its token refused",
			play:        tokenAttack("user/*.cruds", massDelete, true),
		},
		{
			Name:        "lost-device",
			Description: "A drill account's device, holding a live refresh token, is reported lost; the officer opens an incident and revokes the account's sessions through it; the device then tries its refresh token.",
			Required:    []string{"revoke-sessions", "refresh-refused"},
			Containment: "revoke-sessions done as an incident action, and the lost device's refresh token and access token refused",
			play:        lostDevice,
		},
		{
			Name:         "compromised-key",
			Description:  "The officer marks the current key-encryption key compromised through the admin API.",
			Rules:        []string{"key-operation"},
			Required:     []string{"rotate-kek", "rewrap"},
			Containment:  "a new key-encryption key current and no stored key wrapped by the compromised one",
			IsolatedOnly: "it rotates the live server's key-encryption key",
			play:         compromisedKey,
		},
	}
}

// Lookup returns the scenario called name.
func Lookup(name string) (*Scenario, bool) {
	i := slices.IndexFunc(Scenarios(), func(s *Scenario) bool { return s.Name == name })
	if i < 0 {
		return nil, false
	}
	return Scenarios()[i], true
}

// Names returns the scenarios' names.
func Names() []string {
	var names []string
	for _, s := range Scenarios() {
		names = append(names, s.Name)
	}
	return names
}

// An attack is played by a signed-in drill account a with its token; it
// returns any further tokens it obtained, which must be refused too for
// the attack to be contained.
type attack func(ctx context.Context, r *run, a Account, token string) (more []string, err error)

// tokenAttack plays an attack by the first drill account, signed in with
// scope: the attack, then the wait for an alert of the account, then (if
// contain) for its tokens to be refused and the required steps done, then
// the steps and the evidence.
func tokenAttack(scope string, play attack, contain bool) func(context.Context, *run) error {
	return func(ctx context.Context, r *run) error {
		a := r.t.Accounts[0]
		id, err := r.t.accountID(ctx, a.Username)
		if err != nil {
			return err
		}
		before, err := r.snapshot(ctx, id)
		if err != nil {
			return err
		}
		s, err := r.t.signIn(ctx, a, scope)
		if err != nil {
			return err
		}
		r.suspended = append(r.suspended, id)
		r.start()
		more, err := play(ctx, r, a, s.token.AccessToken)
		if err != nil {
			return err
		}
		al, err := r.waitAlert(ctx, before, id)
		if err != nil || al == nil {
			return err
		}
		if !contain {
			r.rep.ContainMS = r.rep.DetectMS // raised is contained here
		} else if err := r.waitContained(ctx, func() (bool, error) {
			for _, tok := range append([]string{s.token.AccessToken}, more...) {
				if refused, err := r.t.refused(ctx, tok); err != nil || !refused {
					return false, err
				}
			}
			return r.requiredDone(ctx, al.ID)
		}); err != nil {
			return err
		}
		return r.collectSteps(ctx, al.ID)
	}
}

// snoop reads one decoy patient.
func snoop(ctx context.Context, r *run, _ Account, token string) ([]string, error) {
	_, _, err := r.t.do(ctx, token, http.MethodGet, "/fhir/Patient/"+url.PathEscape(r.t.Decoys[0]), nil)
	return nil, err
}

// bulkExport reads the whole record of every decoy.
func bulkExport(ctx context.Context, r *run, _ Account, token string) ([]string, error) {
	for _, d := range r.t.Decoys {
		if _, _, err := r.t.do(ctx, token, http.MethodGet, "/fhir/Patient/"+url.PathEscape(d)+"/$everything", nil); err != nil {
			return nil, err
		}
	}
	r.note("at small scale the bulk-access rule stays below its thresholds (1,000 resources in one answer; a staff account's daily exports only after its learning days): the decoys in the export are what detects it")
	return nil, nil
}

// massDeletes is the deletes massDelete sends: the mass-change rule's
// default threshold of deletes within its window.
const massDeletes = 20

// massDelete deletes records that exist nowhere (fresh random ids), as
// fast as a script would. Attempts count for the mass-change rule whether
// or not they succeed, so no record is harmed.
func massDelete(ctx context.Context, r *run, _ Account, token string) ([]string, error) {
	for i := range massDeletes + 2 {
		status, _, err := r.t.do(ctx, token, http.MethodDelete, "/fhir/Observation/drill-"+rand.Text()[:16], nil)
		if err != nil {
			return nil, err
		}
		if status == http.StatusUnauthorized {
			r.note("the account's token was refused after %d deletes", i)
			return nil, nil
		}
	}
	return nil, nil
}

// farAddress is where the stolen credentials are used from: a public
// address (TEST-NET-3, RFC 5737), far in network terms from the loopback
// address the account's owner signs in from.
const farAddress = "203.0.113.77"

// stealCredentials: minutes after the account's owner signed in (the
// token tokenAttack holds), someone else signs in with the same
// credentials from a network far away: impossible travel.
func stealCredentials(ctx context.Context, r *run, a Account, _ string) ([]string, error) {
	thief, err := r.t.signInFrom(ctx, a, "user/*.rs", farAddress)
	if err != nil {
		return nil, fmt.Errorf("the sign-in with the stolen credentials: %w", err)
	}
	return []string{thief.token.AccessToken}, nil
}

// lostDevice: the device holds a refresh token; its loss is reported (an
// incident opened by hand: the detection) and the officer adds
// revoke-sessions to the incident; then the device's refresh token must
// be refused.
func lostDevice(ctx context.Context, r *run) error {
	a := r.t.Accounts[0]
	id, err := r.t.accountID(ctx, a.Username)
	if err != nil {
		return err
	}
	s, err := r.t.signIn(ctx, a, "user/*.rs offline_access")
	if err != nil {
		return err
	}
	if err := r.t.refresh(ctx, s); err != nil {
		return fmt.Errorf("the device's refresh token did not work before the loss: %w", err)
	}
	r.suspended = append(r.suspended, id)
	r.start()
	var in incident
	if _, err := r.t.officer(ctx, http.MethodPost, "/security/incidents", map[string]any{
		"title": "Drill: device of " + id + " reported lost", "severity": "high",
		"scope": map[string]any{"users": []string{id}},
	}, &in); err != nil {
		return fmt.Errorf("report the loss: %w", err)
	}
	r.rep.DetectMS = r.ms(r.o.Now())
	r.rep.Incidents = append(r.rep.Incidents, in.ID)
	r.note("detection is the loss being reported: an incident opened by hand")
	// The officer contains by hand, through the incident: revoke-sessions
	// as an incident action, carried out before the answer.
	revoke := Step{Action: "revoke-sessions", Required: true, Outcome: StepFailed}
	var after incident
	if _, err := r.t.officer(ctx, http.MethodPost, "/security/incidents/"+url.PathEscape(in.ID)+"/actions",
		map[string]any{"kind": "revoke-sessions", "target": map[string]any{"user": id}}, &after,
		"If-Match", `W/"`+strconv.FormatInt(in.Version, 10)+`"`); err != nil {
		revoke.Reason = err.Error()
	} else if n := len(after.Actions); n > 0 {
		revoke.Outcome, revoke.Reason = after.Actions[n-1].State, after.Actions[n-1].Reason
	}
	revoke.MS = r.ms(r.o.Now())
	r.rep.Steps = append(r.rep.Steps, revoke)
	refusedStep := Step{Action: "refresh-refused", Required: true, Outcome: StepFailed, Reason: "the refresh token still works"}
	if err := r.waitContained(ctx, func() (bool, error) {
		if r.t.refresh(ctx, s) == nil {
			return false, nil
		}
		return r.t.refused(ctx, s.token.AccessToken)
	}); err != nil {
		return err
	}
	if r.rep.ContainMS >= 0 {
		refusedStep.Outcome, refusedStep.Reason, refusedStep.MS = StepDone, "", r.rep.ContainMS
	}
	r.rep.Steps = append(r.rep.Steps, refusedStep)
	r.evidence(ctx, in.ID)
	return nil
}

// keyStatus is GET /admin/keys/status.
type keyStatus struct {
	Current  string `json:"current"`
	Versions []struct {
		ID          string     `json:"id"`
		Current     bool       `json:"current"`
		Compromised *time.Time `json:"compromised"`
		Keys        int        `json:"keys"`
	} `json:"versions"`
	Rewrap struct {
		Running  bool       `json:"running"`
		Finished *time.Time `json:"finished"`
		Error    string     `json:"error"`
	} `json:"rewrap"`
}

// compromisedKey marks the current KEK compromised and waits for the
// rotation that forces it out.
func compromisedKey(ctx context.Context, r *run) error {
	before, err := r.snapshot(ctx, "")
	if err != nil {
		return err
	}
	var st keyStatus
	if _, err := r.t.officer(ctx, http.MethodGet, "/fhir/admin/keys/status", nil, &st); err != nil {
		return err
	}
	old := st.Current
	r.start()
	if _, err := r.t.officer(ctx, http.MethodPost, "/fhir/admin/keys/"+url.PathEscape(old)+"/$compromised", nil, nil); err != nil {
		return fmt.Errorf("mark the key compromised: %w", err)
	}
	r.note("the admin API answered the mark in %d ms", r.ms(r.o.Now()))
	if _, err := r.waitAlert(ctx, before, ""); err != nil {
		return err
	}
	rotate := Step{Action: "rotate-kek", Required: true, Outcome: StepFailed, Reason: "the compromised version is still current"}
	rewrap := Step{Action: "rewrap", Required: true, Outcome: StepFailed, Reason: "stored keys are still wrapped by the compromised version"}
	if err := r.waitContained(ctx, func() (bool, error) {
		if _, err := r.t.officer(ctx, http.MethodGet, "/fhir/admin/keys/status", nil, &st); err != nil {
			return false, err
		}
		if st.Current != old && rotate.Outcome != StepDone {
			rotate.Outcome, rotate.Reason, rotate.MS = StepDone, "", r.ms(r.o.Now())
		}
		if st.Rewrap.Error != "" {
			rewrap.Reason = "rewrap: " + st.Rewrap.Error
		}
		for _, v := range st.Versions {
			if v.ID == old && (v.Keys > 0 || v.Current) {
				return false, nil
			}
		}
		if st.Rewrap.Running {
			return false, nil
		}
		rewrap.Outcome, rewrap.Reason, rewrap.MS = StepDone, "", r.ms(r.o.Now())
		return rotate.Outcome == StepDone, nil
	}); err != nil {
		return err
	}
	r.rep.Steps = append(r.rep.Steps, rotate, rewrap)
	r.note("no default playbook answers key-operation alerts (the compromise-kek action exists; no default lists it): the rotation is the admin API's own response to the mark")
	return nil
}
