package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/fhir"
)

// importCommand loads FHIR data into a running server through its API, so
// every write is validated, encrypted and recorded like any other.
type importCommand struct {
	stderr io.Writer
	stdout io.Writer
}

// DefaultImportBatch is how many NDJSON resources go into one transaction.
const DefaultImportBatch = 500

const importUsage = `Usage: phivault import [flags] PATH...

Imports FHIR R4 data into a running phivault server over its API. Each PATH
is a JSON file (a batch or transaction Bundle, or one resource), an NDJSON
file (one resource per line), a folder of such files, or a .tar.gz of them.
Bundles are sent as they are; NDJSON and single resources are grouped into
transactions (PUT when they carry an id, so re-sending them is harmless).

A journal remembers every bundle the server committed, so running the same
import again skips what is already there. It belongs to one vault: the
install id in the server's CapabilityStatement, not the URL, so a fresh
server at the same address gets everything. A bundle is skipped only when
the server still has the first resource it created (a GET answers 200, or
410 if it was deleted since); otherwise it is sent again.

Flags:
`

type importJob struct {
	name string // file (and member) name, for messages
	body []byte // a Bundle
	n    int    // resources in it
	key  string // journal key
	// confirm is where the journal says the bundle's first resource went
	// ("Type/id"); the bundle is skipped if the server still has it.
	confirm string
}

func (c *importCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var cf clientFlags
	cf.register(fs)
	workers := fs.Int("j", 4, "bundles in flight at once")
	journal := fs.String("journal", "", "journal file (default: one per server install in the user cache dir; \"off\" disables)")
	batch := fs.Int("batch", DefaultImportBatch, "resources per transaction for NDJSON and single resources")
	quiet := fs.Bool("q", false, "no progress line")
	fs.Usage = func() { fmt.Fprint(c.stderr, importUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errorWithHint("no input", "name at least one file, folder or .tar.gz")
	}
	cl, err := cf.client(*workers)
	if err != nil {
		return err
	}
	install, err := serverInstallID(ctx, cl)
	if err != nil {
		return errorWithHint(fmt.Sprintf("cannot reach %s: %v", cf.url, err), "start the server (phivault serve) or check -url and -cacert")
	}
	if install == "" && *journal != "off" {
		fmt.Fprintln(c.stderr, "the server does not say which vault it is (no install id in /metadata); the journal is off and every bundle is sent")
		*journal = "off"
	}
	j, err := openJournal(*journal, install)
	if err != nil {
		return err
	}
	defer j.close()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan importJob, *workers)
	var st importStats
	st.start = time.Now()
	var wg sync.WaitGroup
	for range *workers {
		wg.Go(func() {
			for job := range jobs {
				if err := c.send(ctx, cl, j, job, &st); err != nil {
					cancel(err) // the server is unreachable: stop, don't fail every bundle
				}
			}
		})
	}
	stop := st.progress(c.stderr, *quiet)
	var readErr error
	for _, path := range fs.Args() {
		if readErr = readInputs(path, *batch, func(job importJob) error {
			job.confirm = j.location(job.key)
			st.queued.Add(int64(job.n))
			select {
			case jobs <- job:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}); readErr != nil {
			break
		}
	}
	close(jobs)
	wg.Wait()
	stop()
	elapsed := time.Since(st.start)
	fmt.Fprintf(c.stdout, "imported %d resources in %d bundles in %s (%.0f resources/s); skipped %d already imported (confirmed by the server); %d bundles failed\n",
		st.done.Load(), st.bundles.Load(), elapsed.Round(time.Millisecond), float64(st.done.Load())/elapsed.Seconds(), st.skipped.Load(), st.failed.Load())
	if n := st.resent.Load(); n > 0 {
		fmt.Fprintf(c.stdout, "%d bundles in the journal were not on the server and were sent again\n", n)
	}
	if err := context.Cause(ctx); errors.Is(err, errTokenRefused) {
		return errorWithHint("the server refused the API token (HTTP 401); nothing more was sent",
			"set PHIVAULT_TOKEN or PHIVAULT_TOKEN_FILE to a valid token (init and demo print one)")
	} else if err != nil && !errors.Is(err, context.Canceled) {
		return errorWithHint(fmt.Sprintf("cannot reach %s: %v", cf.url, err), "start the server (phivault serve) or check -url and -cacert; committed bundles are skipped when you run the import again")
	}
	if readErr != nil {
		return readErr
	}
	if n := st.failed.Load(); n > 0 {
		return fmt.Errorf("%d bundles failed; fix them and run the same import again (committed bundles are skipped)", n)
	}
	return nil
}

// errTokenRefused stops an import whose token the server refuses.
var errTokenRefused = errors.New("token refused")

// send posts one bundle and journals it on success, unless the journal
// has it and the server confirms it still has the bundle's first resource.
// It returns an error only when the server cannot be reached at all or
// refuses the token; a rejected bundle is reported and counted.
func (c *importCommand) send(ctx context.Context, cl *apiClient, j *journal, job importJob, st *importStats) error {
	if job.confirm != "" {
		status, _, err := cl.do(ctx, http.MethodGet, "/"+job.confirm, nil)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			st.failed.Add(1)
			return err
		case status == http.StatusUnauthorized:
			st.failed.Add(1)
			return errTokenRefused
		case status == http.StatusOK || status == http.StatusGone:
			st.queued.Add(-int64(job.n))
			st.skipped.Add(int64(job.n))
			return nil
		}
		st.resent.Add(1) // journaled, but this server does not have it
	}
	status, body, err := cl.do(ctx, http.MethodPost, "", job.body)
	switch {
	case ctx.Err() != nil:
		return nil // stopping
	case err != nil:
		st.failed.Add(1)
		return err
	case status == http.StatusUnauthorized:
		// Every other bundle would fail the same way, and the bundle is
		// not at fault: stop.
		st.failed.Add(1)
		return errTokenRefused
	case status/100 != 2:
		fmt.Fprintf(c.stderr, "%s: HTTP %d: %s\n", job.name, status, outcomeMessage(body))
		st.failed.Add(1)
		return nil
	}
	if err = j.add(job.key, firstLocation(body)); err != nil {
		fmt.Fprintf(c.stderr, "%s: committed, but the journal could not be written: %v\n", job.name, err)
	}
	st.done.Add(int64(job.n))
	st.bundles.Add(1)
	return nil
}

type importStats struct {
	start                                  time.Time
	queued, done, skipped, bundles, failed atomic.Int64
	resent                                 atomic.Int64 // journaled but not on the server
}

// progress prints a progress line every half second until stop is called.
func (st *importStats) progress(w io.Writer, quiet bool) (stop func()) {
	if quiet {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprintln(w)
				return
			case <-t.C:
				n := st.done.Load()
				fmt.Fprintf(w, "\r%s %d/%d resources, %.0f/s, %d failed ", bar(n, st.queued.Load()), n, st.queued.Load(), float64(n)/time.Since(st.start).Seconds(), st.failed.Load())
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// bar draws a 20-character progress bar.
func bar(n, total int64) string {
	filled := 0
	if total > 0 {
		filled = int(20 * n / total)
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", 20-filled) + "]"
}

// readInputs walks path and calls emit with one job per bundle to send.
func readInputs(path string, batch int, emit func(importJob) error) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if isInputName(p) || strings.HasSuffix(p, ".tar.gz") || strings.HasSuffix(p, ".tgz") {
				return readInputs(p, batch, emit)
			}
			return nil
		})
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if strings.HasSuffix(path, ".tar.gz") || strings.HasSuffix(path, ".tgz") {
		return readTarGz(path, f, batch, emit)
	}
	return readFile(path, f, batch, emit)
}

func isInputName(name string) bool {
	return strings.HasSuffix(name, ".json") || strings.HasSuffix(name, ".ndjson")
}

func readTarGz(name string, r io.Reader, batch int, emit func(importJob) error) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if h.Typeflag != tar.TypeReg || !isInputName(h.Name) {
			continue
		}
		if err := readFile(name+":"+h.Name, tr, batch, emit); err != nil {
			return err
		}
	}
}

// readFile reads one JSON or NDJSON document.
func readFile(name string, r io.Reader, batch int, emit func(importJob) error) error {
	if strings.HasSuffix(name, ".ndjson") {
		return readNDJSON(name, r, batch, emit)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	var head struct {
		ResourceType string            `json:"resourceType"`
		Type         string            `json:"type"`
		Entry        []json.RawMessage `json:"entry"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return fmt.Errorf("%s: not JSON: %v", name, jsonErrorSafe(err))
	}
	if head.ResourceType == "Bundle" && (head.Type == "transaction" || head.Type == "batch") {
		return emit(importJob{name: name, body: data, n: len(head.Entry), key: journalKey(data)})
	}
	b, err := transactionOf([]json.RawMessage{data})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return emit(importJob{name: name, body: b, n: 1, key: journalKey(b)})
}

// jsonErrorSafe keeps a JSON error's position but not the text it quotes.
func jsonErrorSafe(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	return "unexpected structure"
}

func readNDJSON(name string, r io.Reader, batch int, emit func(importJob) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var lines []json.RawMessage
	flush := func() error {
		if len(lines) == 0 {
			return nil
		}
		b, err := transactionOf(lines)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		n := len(lines)
		lines = nil
		return emit(importJob{name: name, body: b, n: n, key: journalKey(b)})
	}
	for line := 1; sc.Scan(); line++ {
		l := bytes.TrimSpace(sc.Bytes())
		if len(l) == 0 {
			continue
		}
		if !json.Valid(l) {
			return fmt.Errorf("%s: line %d is not JSON", name, line)
		}
		lines = append(lines, append(json.RawMessage(nil), l...))
		if len(lines) == batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return flush()
}

// transactionOf wraps resources in a transaction Bundle: PUT Type/id when a
// resource has an id, POST otherwise.
func transactionOf(resources []json.RawMessage) ([]byte, error) {
	type request struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	}
	type entry struct {
		Resource json.RawMessage `json:"resource"`
		Request  request         `json:"request"`
	}
	bundle := struct {
		ResourceType string  `json:"resourceType"`
		Type         string  `json:"type"`
		Entry        []entry `json:"entry"`
	}{ResourceType: "Bundle", Type: "transaction"}
	for i, r := range resources {
		var head struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		}
		if err := json.Unmarshal(r, &head); err != nil || head.ResourceType == "" {
			return nil, fmt.Errorf("resource %d has no resourceType", i+1)
		}
		req := request{Method: http.MethodPost, URL: head.ResourceType}
		if head.ID != "" {
			req = request{Method: http.MethodPut, URL: head.ResourceType + "/" + head.ID}
		}
		bundle.Entry = append(bundle.Entry, entry{Resource: r, Request: req})
	}
	return json.Marshal(bundle)
}

func journalKey(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// journal records the bundles one vault committed: a line "install ID"
// naming the vault (its install id), then one line per bundle, "HASH
// Type/id" (the hash of the bundle and where its first resource went).
type journal struct {
	mu   sync.Mutex
	seen map[string]string // hash to location
	f    *os.File
}

// openJournal opens the journal at path for the vault with the install id
// install: by default one per install id in the user cache dir; "off" for
// none. A journal of another vault is refused.
func openJournal(path, install string) (*journal, error) {
	j := &journal{seen: map[string]string{}}
	if path == "off" {
		return j, nil
	}
	if path == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return nil, errorWithHint("no user cache dir for the import journal", "pass -journal FILE or -journal off")
		}
		path = filepath.Join(dir, "phivault", "import-"+install+".journal")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	// An unreadable journal must stop the import: treating it as empty
	// would send every committed bundle again.
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("journal: %w", err)
	}
	header := "install " + install
	lines := strings.Split(string(data), "\n")
	if len(data) > 0 && lines[0] != header {
		return nil, errorWithHint(fmt.Sprintf("journal %s belongs to another vault (or an older phivault), not to the server's install %s", path, install),
			"pass a new -journal FILE for this server")
	}
	for _, l := range lines[1:] {
		// A location send cannot confirm (from an edited journal) counts
		// as not journaled: the bundle is sent again.
		if hash, loc, ok := strings.Cut(l, " "); ok && hash != "" && isConfirmRef(loc) {
			j.seen[hash] = loc
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if len(data) == 0 {
		if _, err := f.WriteString(header + "\n"); err != nil {
			f.Close()
			return nil, fmt.Errorf("journal: %w", err)
		}
	}
	j.f = f
	return j, nil
}

// location returns where the journaled bundle with hash key put its first
// resource, or "" if the journal does not have it.
func (j *journal) location(key string) string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.seen[key]
}

// add journals a committed bundle. Without a location (a response with no
// entry locations) there is nothing to confirm it by, so it is not
// journaled and is sent again next time.
func (j *journal) add(key, location string) error {
	if location == "" {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.seen[key] = location
	if j.f == nil {
		return nil
	}
	_, err := j.f.WriteString(key + " " + location + "\n")
	return err
}

func (j *journal) close() {
	if j.f != nil {
		j.f.Close()
	}
}

// firstLocation returns "Type/id" of the first entry location of a
// batch- or transaction-response, or "".
func firstLocation(body []byte) string {
	var b struct {
		Entry []struct {
			Response struct {
				Location string `json:"location"`
			} `json:"response"`
		} `json:"entry"`
	}
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	for _, e := range b.Entry {
		ref := e.Response.Location
		if i := strings.Index(ref, "/_history/"); i >= 0 {
			ref = ref[:i]
		}
		parts := strings.Split(ref, "/")
		if len(parts) >= 2 {
			if loc := parts[len(parts)-2] + "/" + parts[len(parts)-1]; isConfirmRef(loc) {
				return loc
			}
		}
	}
	return ""
}

// isConfirmRef reports whether ref is "Type/id" that send may GET to
// confirm a journaled bundle: an R4 resource type and a FHIR id that stays
// one path segment. An id made only of dots is valid FHIR, but "." and ".."
// would move the GET to another path of the server.
func isConfirmRef(ref string) bool {
	typ, id, ok := strings.Cut(ref, "/")
	return ok && fhir.IsResourceType(typ) && fhir.IsID(id) && strings.Trim(id, ".") != ""
}

var (
	// installIDPattern is what dataDir.installID makes; the id names the
	// journal file, so nothing else is accepted.
	installIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// serverInstallID reads the install id from the server's
// CapabilityStatement; "" if it shows none.
func serverInstallID(ctx context.Context, cl *apiClient) (string, error) {
	status, body, err := cl.do(ctx, http.MethodGet, "/metadata", nil)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("GET /metadata: HTTP %d: %s", status, outcomeMessage(body))
	}
	var cs struct {
		Implementation struct {
			Extension []struct {
				URL     string `json:"url"`
				ValueID string `json:"valueId"`
			} `json:"extension"`
		} `json:"implementation"`
	}
	if err := json.Unmarshal(body, &cs); err != nil {
		return "", fmt.Errorf("GET /metadata: not a CapabilityStatement")
	}
	for _, e := range cs.Implementation.Extension {
		if e.URL == api.InstallIDExtension && installIDPattern.MatchString(e.ValueID) {
			return e.ValueID, nil
		}
	}
	return "", nil
}
