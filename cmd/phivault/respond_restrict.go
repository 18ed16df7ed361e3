package main

// Two containment controls of the incident responder (respond.go):
//
//   - restrict-compartment puts each of an action's patients behind
//     break-the-glass: a record in the compartment (access.Restrict) that
//     the one access decision reads, like consents and labels.
//   - raise-detail records, for the action's user and for its For (0:
//     until undone), the search values of every search as keyed tokens
//     (auditlog.Detailer); investigators compute the token of a value
//     with POST /fhir/audit/token or "phivault audit token".
//
// Both are stored in the vault, so they survive a restart; each change is
// an audit entry written before it.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/access"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/incident"
)

// containment is what the two controls need of the running vault.
type containment struct {
	access *access.RecordService // nil: no access layer, nothing to restrict
	detail *raisedDetail
}

var errNoContainment = phivault.Errorf(phivault.EUNSUPPORTED, "This vault runs without its access layer; it cannot restrict compartments or raise detail.")

// restrictCompartment restricts every patient of a. If it fails part way,
// it lifts what it restricted: a failed action cannot be undone, so no
// restriction of it may outlive it out of reach.
func (c *vaultControls) restrictCompartment(ctx context.Context, a incident.Action) error {
	err := c.eachPatient(ctx, a, "restrict-compartment "+a.ID+" by incident response: break-the-glass only",
		func(p string) error { return c.containment.access.Restrict(ctx, p, a.ID) })
	if code := phivault.ErrorCode(err); err != nil && code != phivault.EINVALID && code != phivault.EUNSUPPORTED {
		ctx := context.WithoutCancel(ctx)
		c.eachPatient(ctx, a, "restrict-compartment "+a.ID+" rolled back: the action failed",
			func(p string) error { return c.containment.access.Lift(ctx, p, a.ID) })
	}
	return err
}

// liftCompartment lifts a's restriction of every patient of a.
func (c *vaultControls) liftCompartment(ctx context.Context, a incident.Action) error {
	return c.eachPatient(ctx, a, "restrict-compartment "+a.ID+" undone by incident response",
		func(p string) error { return c.containment.access.Lift(ctx, p, a.ID) })
}

// eachPatient records decision for each patient of a, then calls fn.
// The entries name the patient as their target, not as a compartment
// touched: the patient's access report shows no trace of the
// restriction (only, as always, the refused attempts of staff).
func (c *vaultControls) eachPatient(ctx context.Context, a incident.Action, decision string, fn func(string) error) error {
	if c.containment.access == nil {
		return errNoContainment
	}
	if len(a.Target.Patients) == 0 {
		return phivault.Errorf(phivault.EINVALID, "The action names no patient.")
	}
	for _, p := range a.Target.Patients {
		if !fhir.IsID(p) {
			return phivault.Errorf(phivault.EINVALID, "The action names a patient id that is not a FHIR id.")
		}
	}
	for _, p := range a.Target.Patients {
		e := phivault.NewRequestEntry(ctx, "", time.Now(), phivault.ActionIncident, "Patient", p)
		e.Decision = decision
		if err := c.log.Append(ctx, e); err != nil {
			return phivault.Errorf(phivault.EUNAVAILABLE, "The audit trail cannot be written; the compartment was not changed.")
		}
		if err := fn(p); err != nil {
			return err
		}
	}
	return nil
}

// raiseDetail raises the detail recorded of a's user for a.For (0: until
// undone).
func (c *vaultControls) raiseDetail(ctx context.Context, a incident.Action) error {
	if c.containment.access == nil || c.containment.detail == nil {
		return errNoContainment
	}
	if a.Target.User == "" {
		return phivault.Errorf(phivault.EINVALID, "The action names no user.")
	}
	if a.For < 0 {
		return phivault.Errorf(phivault.EINVALID, "The action's duration is negative.")
	}
	w := access.Watch{User: a.Target.User, Action: a.ID}
	decision := "raise-detail " + a.ID + " by incident response: search values recorded as keyed tokens until undone"
	if a.For > 0 {
		w.Until = c.containment.detail.now().Add(a.For).UTC().Truncate(time.Second)
		decision = "raise-detail " + a.ID + " by incident response: search values recorded as keyed tokens until " + w.Until.Format(time.RFC3339)
	}
	e := phivault.NewRequestEntry(ctx, "", time.Now(), phivault.ActionIncident, "Account", a.Target.User)
	e.Decision = decision
	if err := c.log.Append(ctx, e); err != nil {
		return phivault.Errorf(phivault.EUNAVAILABLE, "The audit trail cannot be written; the detail was not raised.")
	}
	if err := c.containment.access.RaiseDetail(ctx, w); err != nil {
		return err
	}
	c.containment.detail.put(w)
	return nil
}

// lowerDetail ends a's raised detail.
func (c *vaultControls) lowerDetail(ctx context.Context, a incident.Action) error {
	if c.containment.access == nil || c.containment.detail == nil {
		return errNoContainment
	}
	e := phivault.NewRequestEntry(ctx, "", time.Now(), phivault.ActionIncident, "Account", a.Target.User)
	e.Decision = "raise-detail " + a.ID + " undone by incident response"
	if err := c.log.Append(ctx, e); err != nil {
		return phivault.Errorf(phivault.EUNAVAILABLE, "The audit trail cannot be written; the detail was not lowered.")
	}
	err := c.containment.access.LowerDetail(ctx, a.ID)
	// Stop recording here at once, even if the stored record outlives an
	// error (the undo then fails, and the next reading brings it back).
	c.containment.detail.drop(a.ID)
	return err
}

// raisedDetail is the set of raised-detail records in force, read from
// the vault on first use and again every detailReload (so that a change
// made on another node of a cluster applies here within that time), and
// kept up to date at once by this node's controls; it implements
// auditlog.Detailer. It is safe for concurrent use.
type raisedDetail struct {
	access *access.RecordService
	// tokens computes keyed tokens under the vault's detail key
	// (envelope.DetailTokens).
	tokens func(ctx context.Context, values []phivault.IndexValue) ([]phivault.Token, error)
	now    func() time.Time

	loading sync.Mutex // held by the one goroutine reading the records
	mu      sync.Mutex
	loaded  time.Time               // when the records were last read; zero: never
	watches map[string]access.Watch // by action id
}

// detailReload is how often the raised-detail records are read again.
const detailReload = time.Minute

// newRaisedDetail returns the raised-detail set of the vault behind rs,
// with tokens under the detail key of sealer in store.
func newRaisedDetail(rs *access.RecordService, store phivault.Store, sealer *envelope.Sealer) *raisedDetail {
	return &raisedDetail{
		access: rs,
		tokens: func(ctx context.Context, values []phivault.IndexValue) ([]phivault.Token, error) {
			return sealer.DetailTokens(ctx, store, values)
		},
		now: time.Now,
	}
}

// raised reports whether actor is under raised detail at t, reading the
// stored records first if they were never read or are due again. Until
// they were read once, an error reading them is returned; after that, the
// last set read stays in force and the next search tries again.
func (d *raisedDetail) raised(ctx context.Context, actor string, t time.Time) (bool, error) {
	now := d.now()
	d.mu.Lock()
	loaded := d.loaded
	d.mu.Unlock()
	if due := loaded.IsZero() || now.Sub(loaded) >= detailReload || now.Before(loaded); due {
		// One goroutine reads; the others go on with the set in force,
		// unless there is none yet.
		if loaded.IsZero() {
			d.loading.Lock()
		} else if !d.loading.TryLock() {
			due = false
		}
		if due {
			err := d.load(ctx, now)
			d.loading.Unlock()
			if err != nil && loaded.IsZero() {
				return false, err
			}
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, w := range d.watches {
		if w.User == actor && w.User != "" && (w.Until.IsZero() || t.Before(w.Until)) {
			return true, nil
		}
	}
	return false, nil
}

// load reads the stored records, unless another goroutine just did.
func (d *raisedDetail) load(ctx context.Context, now time.Time) error {
	d.mu.Lock()
	fresh := !d.loaded.IsZero() && now.Sub(d.loaded) < detailReload && !now.Before(d.loaded)
	d.mu.Unlock()
	if fresh {
		return nil
	}
	ws, err := d.access.Watches(context.WithoutCancel(ctx))
	if err != nil {
		return err
	}
	m := make(map[string]access.Watch, len(ws))
	for _, w := range ws {
		m[w.Action] = w
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.watches, d.loaded = m, now
	return nil
}

func (d *raisedDetail) put(w access.Watch) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.watches == nil {
		d.watches = map[string]access.Watch{}
	}
	d.watches[w.Action] = w
}

// drop stops action's raised detail on this node at once.
func (d *raisedDetail) drop(action string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.watches, action)
}

// SearchValues implements auditlog.Detailer: for an actor under raised
// detail, each value of each parameter of q as "name=TOKEN".
func (d *raisedDetail) SearchValues(ctx context.Context, actor string, t time.Time, q *phivault.Query) ([]string, error) {
	if actor == "" || len(q.Params) == 0 {
		return nil, nil
	}
	if ok, err := d.raised(ctx, actor, t); err != nil || !ok {
		return nil, err
	}
	var labels []string
	var values []phivault.IndexValue
	for _, p := range q.Params {
		label := p.Name
		if p.Modifier != "" {
			label += ":" + p.Modifier
		}
		for _, v := range p.Values {
			labels = append(labels, label)
			values = append(values, detailValue(p.Name, v))
		}
	}
	tokens, err := d.tokens(context.WithoutCancel(ctx), values)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(tokens))
	for i, tk := range tokens {
		out[i] = labels[i] + "=" + hex.EncodeToString(tk[:])
	}
	return out, nil
}

// detailValue is the value a raised-detail token is computed of: the
// search value as the client sent it (one of a comma-separated list),
// trimmed and lower-cased, so that "Smith" and "smith " give one token,
// keyed by the parameter name without its modifier.
func detailValue(param, value string) phivault.IndexValue {
	return phivault.IndexValue{Param: param, Value: strings.ToLower(strings.TrimSpace(value))}
}

// tokenRequest asks for the raised-detail token of one value.
type tokenRequest struct {
	Param string `json:"param"`
	Value string `json:"value"`
}

// tokenResponse is the token, as the trail's search_values show it after
// "name=".
type tokenResponse struct {
	Param string `json:"param"`
	Token string `json:"token"`
}

// maxTokenBody bounds a token request.
const maxTokenBody = 8 << 10

// auditTokenHandler serves POST /audit/token (under /fhir): those who
// may read the audit trail compute the raised-detail token of a value, to
// test whether a user under raised detail searched for it. The value
// travels in the body, never the URL, and is never recorded: the entry
// made first names the parameter only.
func auditTokenHandler(a *detect.API, detail func() *raisedDetail) http.Handler {
	return a.Guard("AuditToken", func(w http.ResponseWriter, r *http.Request) {
		e := a.Entry(r, phivault.ActionExport, "AuditToken", "")
		var req tokenRequest
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxTokenBody))
		if err == nil {
			err = json.Unmarshal(body, &req)
		}
		switch {
		case err != nil:
			a.Refuse(w, r, e, phivault.Errorf(phivault.EINVALID, `The body must be JSON {"param": "name", "value": "..."} of at most %d bytes.`, maxTokenBody))
			return
		case !isParamName(req.Param):
			a.Refuse(w, r, e, phivault.Errorf(phivault.EINVALID, "param must be a search parameter name, such as name or birthdate (no modifier)."))
			return
		case req.Value == "" || !utf8.ValidString(req.Value):
			a.Refuse(w, r, e, phivault.Errorf(phivault.EINVALID, "value must be non-empty text."))
			return
		}
		d := detail()
		if d == nil {
			a.Refuse(w, r, e, phivault.Errorf(phivault.EUNAVAILABLE, "Raised detail is not available on this server."))
			return
		}
		e.SearchParams = []string{req.Param}
		e.Decision = "raised-detail token of a value of " + req.Param
		if !a.Record(w, r, e) {
			return
		}
		tokens, err := d.tokens(r.Context(), []phivault.IndexValue{detailValue(req.Param, req.Value)})
		if err != nil {
			fhir.WriteOutcome(w, phivault.Errorf(phivault.EUNAVAILABLE, "The token cannot be computed now (is the vault sealed?)."))
			return
		}
		detect.WriteJSON(w, http.StatusOK, tokenResponse{Param: req.Param, Token: hex.EncodeToString(tokens[0][:])})
	})
}

// isParamName reports whether s looks like a FHIR search parameter name.
func isParamName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// auditToken runs "phivault audit token -param NAME VALUE": it asks the
// running server for the raised-detail token of VALUE.
func (c *auditCommand) auditToken(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("audit token", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var cf clientFlags
	cf.register(fs)
	param := fs.String("param", "", "search parameter name the value was searched with, such as name (no modifier)")
	fs.Usage = func() { fmt.Fprint(c.stderr, auditUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *param == "" || fs.NArg() != 1 {
		return errorWithHint("audit token needs -param and one value", `phivault audit token -param name "Smith"`)
	}
	cl, err := cf.client(1)
	if err != nil {
		return err
	}
	body, err := json.Marshal(tokenRequest{Param: *param, Value: fs.Arg(0)})
	if err != nil {
		return err
	}
	status, out, err := cl.do(ctx, http.MethodPost, "/audit/token", body)
	if err != nil {
		return errorWithHint(fmt.Sprintf("cannot reach %s: %v", cf.url, err), "start the server, check -url and -cacert")
	}
	if status != http.StatusOK {
		return fmt.Errorf("server answered %d: %s", status, outcomeMessage(out))
	}
	var tr tokenResponse
	if err := json.Unmarshal(out, &tr); err != nil {
		return fmt.Errorf("audit token: the server's answer: %w", err)
	}
	fmt.Fprintf(c.stdout, "%s=%s\n", tr.Param, tr.Token)
	return nil
}

// auditTokenRoute returns the handler of POST /audit/token for the audit
// mux, authenticating with auth.
func (a *app) auditTokenRoute(auth api.Authenticator) http.Handler {
	return auditTokenHandler(&detect.API{Auth: auditActor{auth}, Log: a.audit.log}, func() *raisedDetail { return a.detail })
}
