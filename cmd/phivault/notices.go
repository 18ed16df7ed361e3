package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/incident"
	"github.com/phivault/phivault/incident/notice"
)

// vaultAddressees reads the addressees of breach notices from Patient
// records, below access and audit (as vaultResidences does): it serves
// only the notices route, whose audit entry names every patient before
// any is read. Decoys are the honeytokens the detectors watch.
type vaultAddressees struct {
	records phivault.RecordService
	detect  detect.Store
}

var _ incident.Addressees = vaultAddressees{}

// Decoys implements incident.Addressees.
func (v vaultAddressees) Decoys(ctx context.Context) ([]string, error) {
	saved, err := v.detect.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("load the decoys: %w", err)
	}
	return saved.Honeytokens, nil
}

// Addressee implements incident.Addressees. A record deleted or
// crypto-shredded is StatusGone: its contact details went with it.
func (v vaultAddressees) Addressee(ctx context.Context, patient string) (notice.Addressee, error) {
	r, err := v.records.Read(ctx, "Patient", patient)
	switch {
	case errors.Is(err, phivault.ErrNotFound), phivault.ErrorCode(err) == phivault.EGONE, phivault.ErrorCode(err) == phivault.ENOTFOUND:
		return notice.Addressee{Status: notice.StatusGone}, nil
	case err != nil:
		return notice.Addressee{}, err
	}
	return patientAddressee(r.Body), nil
}

// fhirName is a FHIR HumanName.
type fhirName struct {
	Use    string   `json:"use"`
	Text   string   `json:"text"`
	Family string   `json:"family"`
	Given  []string `json:"given"`
	Prefix []string `json:"prefix"`
	Suffix []string `json:"suffix"`
	Period *struct {
		End string `json:"end"`
	} `json:"period"`
}

// fhirAddress is a FHIR Address.
type fhirAddress struct {
	Use        string   `json:"use"`
	Type       string   `json:"type"`
	Line       []string `json:"line"`
	City       string   `json:"city"`
	State      string   `json:"state"`
	PostalCode string   `json:"postalCode"`
	Country    string   `json:"country"`
	Period     *struct {
		End string `json:"end"`
	} `json:"period"`
}

// patientAddressee reads the name and mailing address of a Patient: its
// current official (else usual, else first) name, and its current home
// address (else the first one neither old nor physical-only), as
// residenceState chooses the state. A deceased patient is
// StatusDeceased; one without both is StatusNoAddress.
func patientAddressee(body []byte) notice.Addressee {
	var p struct {
		Name             []fhirName    `json:"name"`
		Address          []fhirAddress `json:"address"`
		DeceasedBoolean  *bool         `json:"deceasedBoolean"`
		DeceasedDateTime string        `json:"deceasedDateTime"`
	}
	if json.Unmarshal(body, &p) != nil {
		return notice.Addressee{Status: notice.StatusNoAddress}
	}
	if (p.DeceasedBoolean != nil && *p.DeceasedBoolean) || p.DeceasedDateTime != "" {
		return notice.Addressee{Status: notice.StatusDeceased}
	}
	ad := notice.Addressee{Status: notice.StatusMail, Name: pickName(p.Name)}
	if a, ok := pickAddress(p.Address); ok {
		ad.Address = notice.Address{Lines: a.Line, City: strings.TrimSpace(a.City), State: strings.ToUpper(strings.TrimSpace(a.State)),
			PostalCode: strings.TrimSpace(a.PostalCode), Country: strings.TrimSpace(a.Country)}
	}
	return ad.Check()
}

func pickName(names []fhirName) string {
	var best *fhirName
	for i := range names {
		n := &names[i]
		if n.Use == "old" || (n.Period != nil && n.Period.End != "") {
			continue
		}
		if n.Use == "official" {
			best = n
			break
		}
		if best == nil || (n.Use == "usual" && best.Use != "usual") {
			best = n
		}
	}
	if best == nil {
		return ""
	}
	if best.Family == "" && len(best.Given) == 0 {
		return strings.Join(strings.Fields(best.Text), " ")
	}
	parts := append(append(append([]string{}, best.Prefix...), best.Given...), best.Family)
	return strings.Join(strings.Fields(strings.Join(append(parts, best.Suffix...), " ")), " ")
}

func pickAddress(addrs []fhirAddress) (fhirAddress, bool) {
	var first *fhirAddress
	for i := range addrs {
		a := &addrs[i]
		if a.Use == "old" || a.Type == "physical" || (a.Period != nil && a.Period.End != "") {
			continue
		}
		if a.Use == "home" {
			return *a, true
		}
		if first == nil {
			first = a
		}
	}
	if first == nil {
		return fhirAddress{}, false
	}
	return *first, true
}

// notices runs "phivault incidents notices ID -format pdf -org org.json
// -out FILE": it asks the running server for the breach notices of an
// incident and saves them to a new file, mode 0600.
func (c *incidentsCommand) notices(ctx context.Context, args []string) error {
	const hint = "phivault incidents notices inc-… -format pdf -org org.json -out letters.pdf"
	fs, cf := newFlags(c.stderr, "incidents", "notices", "ID -format pdf|csv|hhs-csv -org FILE -out FILE")
	format := fs.String("format", notice.FormatPDF, "pdf (the letters), csv (their mailing list) or hhs-csv (the notice to HHS)")
	orgFile := fs.String("org", "", "JSON file of the organisation profile and the letter texts (docs/incident-response.md)")
	out := fs.String("out", "", "the file to write; it must not exist (it holds names and addresses)")
	id, err := parseWithID(fs, args, "notices", hint)
	if err != nil {
		return err
	}
	if id == "" || *orgFile == "" || *out == "" {
		return errorWithHint("notices needs an incident id, -org and -out", hint)
	}
	raw, err := os.ReadFile(*orgFile)
	if err != nil {
		return fmt.Errorf("read -org: %w", err)
	}
	var req map[string]json.RawMessage
	if err := json.Unmarshal(raw, &req); err != nil {
		return errorWithHint("-org is not a JSON object", hint)
	}
	req["format"], _ = json.Marshal(*format)
	body, _ := json.Marshal(req)
	// Create the file first, so a refusal to overwrite costs the server
	// nothing, and no name is ever decrypted for a file that cannot be
	// written.
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return errorWithHint(*out+" exists; notices never overwrite a file", "choose another -out, or remove the old file securely")
		}
		return fmt.Errorf("create -out: %w", err)
	}
	res, err := c.fetchNotices(ctx, cf, id, body, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(*out)
		return err
	}
	fmt.Fprintf(c.stdout, "wrote %s: %s letters", *out, res.Get(incident.HeaderLetters))
	fmt.Fprintf(c.stdout, "; %s without a usable address (substitute notice)", res.Get(incident.HeaderSubstitute))
	fmt.Fprintf(c.stdout, "; %s deceased (next of kin)", res.Get(incident.HeaderDeceased))
	fmt.Fprintf(c.stdout, "; %s decoys left out\n", res.Get(incident.HeaderDecoys))
	var n int
	fmt.Sscan(res.Get(incident.HeaderSubstitute), &n)
	if rule := (notice.Summary{Substitute: n}).SubstituteRule(); rule != "" {
		fmt.Fprintf(c.stdout, "substitute notice needed for %d: %s\n", n, rule)
	}
	return nil
}

// fetchNotices posts body to the notices route and streams the answer
// into f; it returns the answer's headers.
func (c *incidentsCommand) fetchNotices(ctx context.Context, cf *clientFlags, id string, body []byte, f io.Writer) (http.Header, error) {
	cl, err := cf.client(1)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, securityURL(cl.base, "incidents/"+url.PathEscape(id)+"/notices"), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+cl.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := cl.http.Do(req)
	if err != nil {
		return nil, errorWithHint(fmt.Sprintf("cannot reach %s: %v", cl.base, err), "start the server, check -url and -cacert")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, fmt.Errorf("server answered %d: %s", resp.StatusCode, outcomeMessage(b))
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		return nil, fmt.Errorf("save the notices: %w", err)
	}
	return resp.Header, nil
}
