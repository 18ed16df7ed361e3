package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/access"
	"github.com/phivault/phivault/admin"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/policy"
)

// PolicyConfig selects the Cedar policies the server decides with.
type PolicyConfig struct {
	Dir string // directory of *.cedar files replacing the embedded defaults; "" for the defaults
}

func (c *PolicyConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.Dir, "policy-dir", os.Getenv("PHIVAULT_POLICY_DIR"), "directory of *.cedar policies replacing the built-in set; reloaded on SIGHUP (env PHIVAULT_POLICY_DIR)")
}

// accessState is the policy enforcement point of a running server: the
// policies, the access layer and its admin routes.
type accessState struct {
	dir     string
	authz   *policy.Authorizer
	rs      *access.RecordService
	handler http.Handler
	log     phivault.AuditLog
	logger  *slog.Logger
}

// openAccess loads the policies and wraps records in the access layer,
// which it returns (api → auditlog → access → vault).
func (a *app) openAccess(records phivault.RecordService) (phivault.RecordService, error) {
	authz, err := policy.New(policy.Options{Dir: a.cfg.Policy.Dir})
	if err != nil {
		return nil, errorWithHint(fmt.Sprintf("load policies: %v", err), "fix the policies in -policy-dir, or leave it empty for the built-in set")
	}
	rs := access.NewRecordService(records, authz)
	rs.Logger = a.logger
	// Policies from -policy-dir may say anything; the access layer relies
	// on the shape of the built-in ones only.
	rs.BuiltInPolicies = a.cfg.Policy.Dir == ""
	a.access = &accessState{dir: a.cfg.Policy.Dir, authz: authz, rs: rs, logger: a.logger}
	return rs, nil
}

// wire completes the access layer once the audit trail, the account store
// and the authenticators exist. auth must put a principal in the context.
func (s *accessState) wire(log phivault.AuditLog, accounts access.AccountLookup, auth api.Authenticator) {
	s.log = log
	s.rs.Log, s.rs.Accounts = log, accounts
	s.handler = withClient(http.StripPrefix("/fhir", admin.NewAccessHandler(admin.AccessOptions{
		Authenticator: auth, Access: s.rs.AdminAPI()})))
}

// mount adds the break-the-glass and explain routes to the /fhir mux; they
// take precedence over the rest of /fhir/admin/.
func (s *accessState) mount(mux *http.ServeMux) {
	if s == nil || s.handler == nil {
		return
	}
	mux.Handle("/fhir"+adminPrefix+"/break-glass", s.handler)
	mux.Handle("/fhir"+adminPrefix+"/break-glass/", s.handler)
	mux.Handle("/fhir"+adminPrefix+"/policy/", s.handler)
}

// reload reloads the policy directory (on SIGHUP). On error the current
// policies stay in force. Every attempt is an audit entry.
func (s *accessState) reload(ctx context.Context) {
	if s == nil {
		return
	}
	if s.dir == "" {
		s.logger.Info("policy: no -policy-dir; the built-in policies stay in force")
		return
	}
	err := s.authz.Reload(s.dir)
	e := &phivault.AuditEntry{Time: time.Now().UTC(), Actor: "system:sighup", Action: phivault.ActionPolicyChange,
		TargetType: "Policy", Outcome: "ok", Decision: "reload " + filepath.Base(s.dir)}
	if err != nil {
		e.Outcome = phivault.ErrorCode(err)
		s.logger.Error("policy: reload refused; the current policies stay in force", "error", err.Error())
	} else {
		s.logger.Info("policy: reloaded", "dir", s.dir)
	}
	if s.log != nil {
		if aerr := s.log.Append(ctx, e); aerr != nil {
			s.logger.Error("policy: reload not recorded in the audit log", "error", aerr.Error())
		}
	}
}

// policyCommand explains decisions of a running server and tests policies
// offline.
type policyCommand struct {
	stdout, stderr io.Writer
}

const policyUsage = `Usage: phivault policy SUBCOMMAND [flags]

Subcommands:
  explain -user USER -action ACTION -resource Type/id [-purpose CODE]
          ask the running server how its policies decide ACTION (read, search,
          history, create, update, delete, breakGlass) by account USER (id or username) on a
          stored resource, and which policies decided (needs a token of a
          security admin, a privacy officer or the bootstrap admin: PHIVAULT_TOKEN)
  test [-policies DIR] DIR
          run the policy test cases in DIR/*.json offline against the policies
          in -policies, else DIR/*.cedar if there are any, else the built-in
          set; exit status 1 if any case fails
  validate DIR
          check DIR/*.cedar against the schema without loading them

A test case file holds one case or an array of cases:
  {"name": "doctor reads", "principal": {"id": "u1", "kind": "staff", "roles": ["physician"],
   "trainingValidUntil": "2030-01-01T00:00:00Z"}, "action": "read",
   "resource": {"type": "Observation", "id": "o1", "category": "patient", "labels": []},
   "patient": {"id": "p1", "careTeam": ["u1"]}, "context": {"time": "2026-01-01T00:00:00Z"},
   "expect": "permit", "policies": ["clinical-read-care-team"]}
"policies" is optional; when given, the determining policies must equal it.
`

func (c *policyCommand) Run(ctx context.Context, args []string) error {
	return runSubcommand(ctx, c.stdout, c.stderr, "policy", policyUsage, "phivault policy help", args, subcommands{
		"explain": c.explain, "test": c.test,
		"validate": func(_ context.Context, args []string) error { return c.validate(args) },
	})
}

func (c *policyCommand) explain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("policy explain", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var cf clientFlags
	cf.register(fs)
	var req access.ExplainRequest
	fs.StringVar(&req.User, "user", "", "account id or username of the user")
	fs.StringVar(&req.Action, "action", "read", "read, search, history, create, update, delete or breakGlass")
	fs.StringVar(&req.Resource, "resource", "", "stored resource, as Type/id")
	fs.StringVar(&req.Purpose, "purpose", "TREAT", "purpose of use")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if req.User == "" || req.Resource == "" {
		return errorWithHint("explain needs -user and -resource", "phivault policy explain -user ID -action read -resource Observation/ID")
	}
	client, err := cf.client(1)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(req)
	status, out, err := client.do(ctx, http.MethodPost, adminPrefix+"/policy/explain", body)
	if err != nil {
		return errorWithHint(fmt.Sprintf("cannot reach %s: %v", cf.url, err), "start the server, check -url and -cacert")
	}
	if status != http.StatusOK {
		return fmt.Errorf("server answered %d: %s", status, outcomeMessage(out))
	}
	var ex access.Explanation
	if err := json.Unmarshal(out, &ex); err != nil {
		return fmt.Errorf("unexpected answer: %w", err)
	}
	fmt.Fprintf(c.stdout, "%s %s by %s on %s\n", strings.ToUpper(ex.Decision), req.Action, req.User, req.Resource)
	fmt.Fprintf(c.stdout, "determining policies: %s\n", strings.Join(ex.Policies, ", "))
	fmt.Fprintf(c.stdout, "category: %s", ex.Category)
	if ex.Patient != "" {
		fmt.Fprintf(c.stdout, ", patient %s, care relationship: %v, active break-the-glass grant: %v", ex.Patient, ex.CareRelationship, ex.ActiveGrant)
	}
	fmt.Fprintln(c.stdout)
	if len(ex.Labels) > 0 {
		fmt.Fprintf(c.stdout, "labels: %s\n", strings.Join(ex.Labels, ", "))
	}
	if ex.BreakGlassPossible {
		fmt.Fprintln(c.stdout, "break-the-glass possible")
	}
	for _, e := range ex.Errors {
		fmt.Fprintf(c.stdout, "evaluation error: %s\n", e)
	}
	return nil
}

// policyCase is one test case of "phivault policy test".
type policyCase struct {
	Name      string           `json:"name"`
	Principal policy.Principal `json:"principal"`
	Action    policy.Action    `json:"action"`
	Resource  policy.Resource  `json:"resource"`
	Patient   policy.Patient   `json:"patient"`
	Context   policy.Context   `json:"context"`
	Expect    string           `json:"expect"` // "permit" or "deny"
	Policies  []string         `json:"policies"`
}

// loadCases reads the cases of every *.json file in dir, in name order.
func loadCases(dir string) ([]policyCase, []string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, nil, err
	}
	sort.Strings(names)
	var cases []policyCase
	var where []string
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, nil, err
		}
		var list []policyCase
		if t := strings.TrimSpace(string(b)); strings.HasPrefix(t, "[") {
			err = json.Unmarshal(b, &list)
		} else {
			var one policyCase
			err = json.Unmarshal(b, &one)
			list = []policyCase{one}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", n, err)
		}
		for i, pc := range list {
			cases = append(cases, pc)
			where = append(where, fmt.Sprintf("%s[%d]", filepath.Base(n), i))
		}
	}
	return cases, where, nil
}

func (c *policyCommand) test(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("policy test", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	polDir := fs.String("policies", "", "directory of *.cedar policies to test (default: the test directory's, else the built-in set)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errorWithHint("policy test needs one directory of test cases", "phivault policy test ./policy-tests")
	}
	dir := fs.Arg(0)
	if *polDir == "" {
		if cedar, _ := filepath.Glob(filepath.Join(dir, "*.cedar")); len(cedar) > 0 {
			*polDir = dir
		}
	}
	authz, err := policy.New(policy.Options{Dir: *polDir})
	if err != nil {
		return err
	}
	set := "built-in policies"
	if *polDir != "" {
		set = "policies in " + *polDir
	}
	cases, where, err := loadCases(dir)
	if err != nil {
		return err
	}
	if len(cases) == 0 {
		return errorWithHint("no test cases in "+dir, "put *.json test cases there; see phivault policy help")
	}
	failed := 0
	for i, pc := range cases {
		name := pc.Name
		if name == "" {
			name = where[i]
		}
		if pc.Context.Time.IsZero() {
			pc.Context.Time = time.Now()
		}
		if pc.Expect != "permit" && pc.Expect != "deny" {
			fmt.Fprintf(c.stdout, "FAIL %s (%s): expect must be permit or deny\n", name, where[i])
			failed++
			continue
		}
		d, err := authz.Decide(ctx, policy.Request{Principal: pc.Principal, Action: pc.Action, Resource: pc.Resource, Patient: pc.Patient, Context: pc.Context})
		got := "deny"
		if d.Allow {
			got = "permit"
		}
		switch {
		case err != nil:
			fmt.Fprintf(c.stdout, "FAIL %s (%s): %v\n", name, where[i], err)
		case got != pc.Expect:
			fmt.Fprintf(c.stdout, "FAIL %s (%s): %s by %s, want %s\n", name, where[i], got, strings.Join(d.Policies, ","), pc.Expect)
		case pc.Policies != nil && !slices.Equal(sorted(pc.Policies), d.Policies):
			fmt.Fprintf(c.stdout, "FAIL %s (%s): %s by %s, want policies %s\n", name, where[i], got, strings.Join(d.Policies, ","), strings.Join(pc.Policies, ","))
		default:
			fmt.Fprintf(c.stdout, "ok   %s: %s\n", name, got)
			continue
		}
		failed++
	}
	fmt.Fprintf(c.stdout, "%d cases, %d failed, against the %s\n", len(cases), failed, set)
	if failed > 0 {
		return errors.New("policy tests failed")
	}
	return nil
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

func (c *policyCommand) validate(args []string) error {
	fs := flag.NewFlagSet("policy validate", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() { fmt.Fprint(c.stderr, policyUsage) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	args = fs.Args()
	if len(args) != 1 {
		return errorWithHint("policy validate needs one directory", "phivault policy validate ./policies")
	}
	if _, err := policy.New(policy.Options{Dir: args[0]}); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "policies in %s are valid\n", args[0])
	return nil
}
