package console

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/phivault/phivault/auditlog"
)

// auditProofData is what the browser needs to check, on its own, that an
// entry of the trail is in the tree of the latest signed checkpoint
// (console/static/proof.js):
//
//   - Checkpoint: the signed note, as GET /fhir/audit/checkpoint answers
//     it. The browser checks its signature with the verifier key the
//     officer gave, and reads the size and root hash from it.
//   - Entry: the entry's bytes exactly as the trail stores and hashes
//     them (the canonical encoding, from GET /fhir/audit/export), in
//     base64. The browser hashes them into the leaf itself, and checks
//     that they are the row it shows (time and actor): the API's own
//     leaf hash is not passed on, since a proof of a hash the server
//     chose would prove nothing about the row.
//   - Proof: the inclusion proof of the entry in the checkpoint's tree
//     (GET /fhir/audit/proof/inclusion), base64 hashes; empty and
//     Pending true when the entry is newer than the checkpoint.
type auditProofData struct {
	Index      int64    `json:"index"`
	Checkpoint string   `json:"checkpoint"`
	Entry      []byte   `json:"entry"`
	Proof      [][]byte `json:"proof"`
	Pending    bool     `json:"pending"`
}

// proofError is the answer of the proof route when it cannot give the
// data: a safe message.
type proofError struct {
	Error string `json:"error"`
}

// auditProof answers the data of an entry's proof as JSON:
// GET /console/audit/proof?index=I. Every read is the API's, and is
// recorded by it (the export of the entry); the checkpoint and the
// proof are hashes only.
func (h *Handler) auditProof(w http.ResponseWriter, r *http.Request, s *session) {
	index, err := strconv.ParseInt(r.URL.Query().Get("index"), 10, 64)
	if err != nil || index < 0 {
		h.proofFail(w, r, s, &apiError{status: http.StatusBadRequest, message: "Give the entry's index as a number."})
		return
	}
	out := auditProofData{Index: index, Proof: [][]byte{}}
	// The checkpoint first: the entry may be newer, never the reverse.
	rp, err := h.api(r, s, http.MethodGet, "/fhir/audit/checkpoint", nil)
	if err == nil {
		err = rp.refusal()
	}
	if err != nil {
		h.proofFail(w, r, s, err)
		return
	}
	out.Checkpoint = string(rp.body)
	cp, err := readCheckpoint(rp.body)
	size := cp.N
	if err != nil {
		h.proofFail(w, r, s, err)
		return
	}
	if out.Entry, err = h.entryBytes(r, s, index); err != nil {
		h.proofFail(w, r, s, err)
		return
	}
	if index >= size {
		out.Pending = true
	} else {
		var incl struct {
			Proof [][]byte `json:"proof"`
		}
		q := url.Values{"index": {strconv.FormatInt(index, 10)}, "size": {strconv.FormatInt(size, 10)}}
		if err := h.getJSON(r, s, "/fhir/audit/proof/inclusion?"+q.Encode(), &incl); err != nil {
			h.proofFail(w, r, s, err)
			return
		}
		out.Proof = append(out.Proof, incl.Proof...)
	}
	writeProofJSON(w, http.StatusOK, out)
}

// readCheckpoint reads a signed checkpoint's text (origin, tree size,
// root hash), unverified: the browser checks the signature.
func readCheckpoint(signed []byte) (auditlog.Checkpoint, error) {
	i := bytes.LastIndex(signed, []byte("\n\n"))
	if i < 0 {
		return auditlog.Checkpoint{}, errors.New("console: the checkpoint is not a signed note")
	}
	return auditlog.ParseCheckpoint(string(signed[:i+1]))
}

// entryBytes returns the stored bytes of the entry at index, from the
// trail's export of that one index.
func (h *Handler) entryBytes(r *http.Request, s *session, index int64) ([]byte, error) {
	q := url.Values{"start": {strconv.FormatInt(index, 10)}, "end": {strconv.FormatInt(index+1, 10)}}
	rp, err := h.api(r, s, http.MethodGet, "/fhir/audit/export?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	if err := rp.refusal(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(rp.body))
	sc.Buffer(nil, maxReply)
	for sc.Scan() {
		var line auditlog.ExportLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, errors.New("console: an export line did not parse")
		}
		if line.Index == index {
			return line.Entry, nil
		}
	}
	return nil, &apiError{status: http.StatusNotFound, message: "The entry is not in the trail's export."}
}

// parseRecorded reads an AuditEvent's recorded time.
func parseRecorded(s string) (time.Time, error) {
	return time.Parse(time.RFC3339Nano, s)
}

// proofFail answers the proof route's failure as JSON, with the API's
// status and safe message, or 503; an ended session is sent to sign in.
func (h *Handler) proofFail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	var ae *apiError
	switch {
	case errors.Is(err, errSignedOut):
		h.toSignIn(w, r)
	case errors.As(err, &ae) && ae.status < 500:
		writeProofJSON(w, ae.status, proofError{ae.message})
	default:
		h.opts.Logger.Error("console: audit proof", "error_type", errorType(err), "path", r.URL.Path)
		writeProofJSON(w, http.StatusServiceUnavailable, proofError{"The proof could not be fetched; try again in a moment."})
	}
}

func writeProofJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
