package api

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

func (h *Handler) serveMetadata(w http.ResponseWriter, r *http.Request) error {
	writeBody(w, http.StatusOK, h.capability)
	return nil
}

func (h *Handler) serveNotFound(w http.ResponseWriter, r *http.Request) error {
	return errNoRoute
}

func (h *Handler) serveRead(w http.ResponseWriter, r *http.Request) error {
	typ, id, err := typeAndID(r)
	if err != nil {
		return err
	}
	res, err := h.records.Read(r.Context(), typ, id)
	if err != nil {
		return err
	}
	return writeResource(w, http.StatusOK, res)
}

func (h *Handler) serveVRead(w http.ResponseWriter, r *http.Request) error {
	typ, id, err := typeAndID(r)
	if err != nil {
		return err
	}
	vid, err := parseVersion(r.PathValue("vid"))
	if err != nil {
		return err
	}
	res, err := h.records.VRead(r.Context(), typ, id, vid)
	if err != nil {
		return err
	}
	return writeResource(w, http.StatusOK, res)
}

func (h *Handler) serveCreate(w http.ResponseWriter, r *http.Request) error {
	typ, err := resourceType(r)
	if err != nil {
		return err
	}
	body, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	opts := phivault.CreateOptions{IfNoneExist: r.Header.Get("If-None-Exist")}
	res, created, err := h.records.Create(r.Context(), typ, body, opts)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	w.Header().Set("Location", h.base(r)+"/"+res.Type+"/"+res.ID+"/_history/"+strconv.FormatInt(res.Version, 10))
	return writeReturn(w, r, status, res)
}

func (h *Handler) serveUpdate(w http.ResponseWriter, r *http.Request) error {
	typ, id, err := typeAndID(r)
	if err != nil {
		return err
	}
	ifMatch, err := parseIfMatch(r.Header.Get("If-Match"))
	if err != nil {
		return err
	}
	body, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	res, created, err := h.records.Update(r.Context(), typ, id, body, phivault.UpdateOptions{IfMatch: ifMatch})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", h.base(r)+"/"+res.Type+"/"+res.ID+"/_history/"+strconv.FormatInt(res.Version, 10))
	}
	return writeReturn(w, r, status, res)
}

func (h *Handler) serveDelete(w http.ResponseWriter, r *http.Request) error {
	typ, id, err := typeAndID(r)
	if err != nil {
		return err
	}
	if err := h.records.Delete(r.Context(), typ, id); err != nil {
		return err
	}
	if preference(r, "return") == "OperationOutcome" {
		writeJSON(w, http.StatusOK, fhir.NewOutcome("information", "informational", "Deleted."))
		return nil
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) serveBundle(w http.ResponseWriter, r *http.Request) error {
	body, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	res, err := h.records.Bundle(r.Context(), body, h.base(r))
	if err != nil {
		return err
	}
	writeBody(w, http.StatusOK, res.Body)
	return nil
}

// writeResource writes one version of a resource with its ETag and
// Last-Modified.
func writeResource(w http.ResponseWriter, status int, res *phivault.Resource) error {
	if res.Deleted {
		return &phivault.Error{Code: phivault.EGONE, Message: "The resource was deleted."}
	}
	setVersionHeaders(w, res)
	writeBody(w, status, res.Body)
	return nil
}

func setVersionHeaders(w http.ResponseWriter, res *phivault.Resource) {
	w.Header().Set("ETag", res.ETag())
	w.Header().Set("Last-Modified", res.LastUpdated.UTC().Format(http.TimeFormat))
}

// writeReturn writes the outcome of a create or update as asked for by
// Prefer: return=minimal | representation (default) | OperationOutcome.
func writeReturn(w http.ResponseWriter, r *http.Request, status int, res *phivault.Resource) error {
	switch preference(r, "return") {
	case "minimal":
		setVersionHeaders(w, res)
		w.WriteHeader(status)
		return nil
	case "OperationOutcome":
		setVersionHeaders(w, res)
		msg := "Updated."
		if status == http.StatusCreated {
			msg = "Created."
		} else if r.Method == http.MethodPost {
			msg = "A matching resource exists; nothing was created."
		}
		writeJSON(w, status, fhir.NewOutcome("information", "informational", msg))
		return nil
	}
	return writeResource(w, status, res)
}

// preference returns the value of one Prefer header token, e.g.
// preference(r, "return") for "Prefer: return=minimal".
func preference(r *http.Request, name string) string {
	for _, v := range r.Header.Values("Prefer") {
		for part := range strings.SplitSeq(v, ",") {
			part, _, _ = strings.Cut(part, ";")
			k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), name) {
				return strings.Trim(strings.TrimSpace(val), `"`)
			}
		}
	}
	return ""
}

// readBody reads a JSON request body of at most h.maxBody bytes.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if err := checkContentType(r, "application/fhir+json", "application/json"); err != nil {
		return nil, err
	}
	if r.ContentLength > h.maxBody {
		return nil, h.errTooLarge()
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + 1)
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, h.maxBody)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, h.errTooLarge()
		}
		return nil, &phivault.Error{Code: phivault.EINVALID, Message: "The request body could not be read."}
	}
	if buf.Len() == 0 {
		return nil, &phivault.Error{Code: phivault.EINVALID, Message: "The request body is empty."}
	}
	return buf.Bytes(), nil
}

func (h *Handler) errTooLarge() error {
	return phivault.Errorf(phivault.ETOOLARGE, "The request body is larger than the limit of %d bytes.", h.maxBody)
}

// base returns the FHIR base URL, without a trailing slash.
func (h *Handler) base(r *http.Request) string {
	if h.baseURL != "" {
		return strings.TrimSuffix(h.baseURL, "/")
	}
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host + "/fhir"
}

func resourceType(r *http.Request) (string, error) {
	typ := r.PathValue("type")
	if typ == "" && strings.HasPrefix(r.Pattern, "GET /fhir/Patient/") {
		typ = "Patient"
	}
	if !fhir.IsResourceType(typ) {
		return "", errUnknownType
	}
	return typ, nil
}

func typeAndID(r *http.Request) (typ, id string, err error) {
	if typ, err = resourceType(r); err != nil {
		return "", "", err
	}
	id = r.PathValue("id")
	if !fhir.IsID(id) {
		return "", "", errBadID
	}
	return typ, id, nil
}

var (
	errBadID      = &phivault.Error{Code: phivault.EINVALID, Message: "Invalid resource id: ids are 1 to 64 of A-Z a-z 0-9 - and ."}
	errBadVersion = &phivault.Error{Code: phivault.ENOTFOUND, Message: "No such version: version ids are positive integers."}
	errBadIfMatch = &phivault.Error{Code: phivault.EINVALID, Message: `Malformed If-Match: send the ETag of the version, W/"n".`}
)

// parsePositive parses a positive decimal integer without sign or leading
// zeros.
func parsePositive(s string) (int64, bool) {
	if s == "" || s[0] == '0' || len(s) > 18 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

func parseVersion(s string) (int64, error) {
	n, ok := parsePositive(s)
	if !ok {
		return 0, errBadVersion
	}
	return n, nil
}

// parseIfMatch parses If-Match: W/"n". Empty means no precondition.
func parseIfMatch(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	v, ok := strings.CutPrefix(s, `W/"`)
	if !ok {
		return 0, errBadIfMatch
	}
	v, ok = strings.CutSuffix(v, `"`)
	if !ok {
		return 0, errBadIfMatch
	}
	n, ok := parsePositive(v)
	if !ok {
		return 0, errBadIfMatch
	}
	return n, nil
}
