package admin

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// Limits of a training import.
const (
	maxTrainingBody = 4 << 20 // bytes of CSV
	maxTrainingRows = 100_000
)

// trainingRequest is the body of PUT /admin/users/{id}/training.
type trainingRequest struct {
	ValidUntil string `json:"valid_until"` // YYYY-MM-DD; "" clears it
}

// setTraining sets one account's training valid-until date; see change.
func (u *userRoutes) setTraining(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req trainingRequest
	if err := decodeJSON(w, r, &req); err != nil {
		u.h.finish(w, r, "Account", id, err, 0, nil)
		return
	}
	u.change(w, r, id, &UserUpdate{TrainingValidUntil: &req.ValidUntil}) // one's own waits for a second admin
}

// TrainingImport is the answer to POST /admin/training.
type TrainingImport struct {
	Rows    int `json:"rows"`    // data rows read
	Updated int `json:"updated"` // accounts whose date changed
}

// importTraining reads CSV rows "username,valid_until" (YYYY-MM-DD), with
// an optional header row naming those two columns, and sets each
// account's training date. Every row is checked before anything is
// written: one bad row (unknown username, bad date, wrong column count,
// a username twice) answers 400 with one issue per bad row, and no
// account changes. The issues give row numbers, never the usernames.
func (u *userRoutes) importTraining(w http.ResponseWriter, r *http.Request) {
	rows, err := u.parseTraining(w, r)
	if err != nil {
		u.h.finish(w, r, "Account", "", err, 0, nil)
		return
	}
	res := TrainingImport{Rows: len(rows)}
	for _, row := range rows {
		if row.acc.TrainingValidUntil.Equal(row.until) {
			continue
		}
		_, err := u.h.ModifyAccount(r.Context(), row.acc.ID, func(a *phivault.Account) error {
			a.TrainingValidUntil = row.until
			return nil
		})
		if aerr := u.h.record(r.Context(), "Account", row.acc.ID, err); aerr != nil && err == nil {
			err = aerr
		}
		if err != nil {
			// Only a store failure gets here; rows already written are
			// idempotent, so importing the file again completes it.
			fhir.WriteOutcome(w, err)
			return
		}
		res.Updated++
	}
	u.h.log.Info("admin: training imported", "rows", res.Rows, "updated", res.Updated)
	writeJSON(w, http.StatusOK, res)
}

type trainingRow struct {
	acc   *phivault.Account
	until time.Time
}

// parseTraining reads and checks every row of the import.
func (u *userRoutes) parseTraining(w http.ResponseWriter, r *http.Request) ([]trainingRow, error) {
	accs, err := phivault.ListAccounts(r.Context(), u.h.opts.Accounts)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]*phivault.Account, len(accs))
	for _, s := range accs {
		byName[s.Account.Username] = s.Account
	}
	cr := csv.NewReader(http.MaxBytesReader(w, r.Body, maxTrainingBody))
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	var (
		rows   []trainingRow
		issues []phivault.Issue
		seen   = map[string]int{}
	)
	bad := func(line int, msg string) {
		issues = append(issues, phivault.Issue{Severity: "error", Code: "invalid",
			Diagnostics: fmt.Sprintf("line %d: %s", line, msg), Expression: []string{fmt.Sprintf("line[%d]", line)}})
	}
	for n := 0; ; n++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, phivault.Errorf(phivault.ETOOLARGE, "The CSV is over %d bytes.", maxTrainingBody)
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			bad(pe.Line, "not valid CSV")
			break
		} else if err != nil {
			return nil, phivault.Errorf(phivault.EINVALID, "The CSV could not be read.")
		}
		line, _ := cr.FieldPos(0)
		if n == 0 && len(rec) == 2 && strings.EqualFold(rec[0], "username") && strings.EqualFold(rec[1], "valid_until") {
			continue
		}
		if len(rows)+len(issues) >= maxTrainingRows {
			return nil, phivault.Errorf(phivault.ETOOLARGE, "The CSV has over %d rows.", maxTrainingRows)
		}
		if len(rec) != 2 {
			bad(line, "want 2 columns: username,valid_until")
			continue
		}
		name, date := strings.TrimSpace(rec[0]), strings.TrimSpace(rec[1])
		acc := byName[name]
		until, derr := ParseTrainingDate(date)
		switch {
		case acc == nil:
			bad(line, "no account has this username")
		case date == "" || derr != nil:
			bad(line, "valid_until must be a date YYYY-MM-DD")
		case seen[name] != 0:
			bad(line, fmt.Sprintf("the same username as line %d", seen[name]))
		case isSelf(r, acc.ID) && !acc.TrainingValidUntil.Equal(until):
			bad(line, "your own training date needs another admin: PUT users/{id}/training asks for approval")
		default:
			seen[name] = line
			rows = append(rows, trainingRow{acc: acc, until: until})
		}
	}
	if len(issues) > 0 {
		return nil, &phivault.Error{Code: phivault.EINVALID,
			Message: fmt.Sprintf("%d bad rows; nothing was imported.", len(issues)), Issues: issues}
	}
	if len(rows) == 0 {
		return nil, phivault.Errorf(phivault.EINVALID, "The CSV has no rows: want username,valid_until lines.")
	}
	return rows, nil
}
