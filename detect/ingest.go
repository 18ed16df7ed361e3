package detect

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/phivault/phivault"
)

// Kinds of ingest requests: the {kind} of POST /security/ingest/{kind}
// and of phivault detect ingest.
const (
	IngestAccess        = "access"        // access events (NDJSON)
	IngestStaff         = "staff"         // a staff roster (NDJSON or CSV)
	IngestPatients      = "patients"      // a patient roster (NDJSON or CSV)
	IngestRelationships = "relationships" // care relationships (NDJSON or CSV)
)

// Content types ingestion reads. "application/ndjson" is taken as NDJSON
// too; a charset other than UTF-8 is refused.
const (
	ContentNDJSON = "application/x-ndjson"
	ContentCSV    = "text/csv"
)

// Defaults of IngestOptions' limits. A request over MaxBytes or MaxLines
// is refused whole (413); a line over MaxLine is one rejected line.
const (
	DefaultIngestMaxBytes = 32 << 20 // 32 MiB
	DefaultIngestMaxLines = 100_000
	DefaultIngestMaxLine  = 64 << 10 // 64 KiB
	// MaxIngestErrors bounds the line errors a report lists; Rejected
	// still counts them all.
	MaxIngestErrors = 1000
)

// tokenChunk is how many roster lines share one Tokenizer call: it bounds
// the plaintext held at once.
const tokenChunk = 1024

// IngestOptions configure ParseIngest and Ingest.
type IngestOptions struct {
	// System names the other system for lines that do not name one (the
	// ?system= query parameter). A line's own "system" wins.
	System string
	// MaxBytes bounds the input. Default DefaultIngestMaxBytes; negative:
	// no bound (files read by phivault detect ingest).
	MaxBytes int64
	// MaxLines bounds the lines (CSV: rows) of the input. Default
	// DefaultIngestMaxLines; negative: no bound.
	MaxLines int
	// MaxLine bounds one line, in bytes. Default DefaultIngestMaxLine.
	MaxLine int
}

// IngestReport is the answer to an ingest: what was kept, and why each
// rejected line was rejected. It holds line numbers, field names and fixed
// reasons, never a value sent.
type IngestReport struct {
	Kind     string `json:"kind"`
	Accepted int    `json:"accepted"`
	Rejected int    `json:"rejected"`
	// First and Last are the ingest sequences given to the records of
	// the accepted lines, in order; 0 if none was accepted. A patient
	// line labelled LabelDecoy gives two records, so Last-First+1 may
	// be more than Accepted.
	First  int64       `json:"first,omitempty"`
	Last   int64       `json:"last,omitempty"`
	Errors []LineError `json:"errors,omitempty"` // the first MaxIngestErrors
}

// LineError says why one line was rejected. Reason is one of a fixed set
// of sentences: it never echoes the value.
type LineError struct {
	Line   int    `json:"line"`            // 1-based; CSV: the line the row starts on (the header is line 1)
	Field  string `json:"field,omitempty"` // the field at fault, or "" for the whole line
	Reason string `json:"reason"`
}

// Ingest reads input of kind (IngestAccess, …) in contentType from r,
// turns names, addresses and phones into tokens with tok, and appends the
// good lines to store in one Store.Ingest call, all or none of them: a
// line is never half-applied, and a request refused whole (too large, an
// unreadable header) stores nothing. Bad lines are listed in the report.
//
// Errors are *phivault.Error for refused input (EINVALID, ETOOLARGE,
// EUNSUPPORTED, ENOTFOUND for an unknown kind), joined with the cause
// otherwise (a failed read, tokenizer or store); none carries a value
// read.
func Ingest(ctx context.Context, store Store, tok Tokenizer, kind, contentType string, r io.Reader, opts IngestOptions) (*IngestReport, error) {
	recs, rep, err := ParseIngest(ctx, tok, kind, contentType, r, opts)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return rep, nil
	}
	last, err := store.Ingest(ctx, recs)
	if err != nil {
		return nil, errors.Join(errStoreUnavailable, fmt.Errorf("detect: ingest %s: %w", kind, err))
	}
	rep.First, rep.Last = last-int64(len(recs))+1, last
	return rep, nil
}

var (
	errStoreUnavailable  = phivault.Errorf(phivault.EUNAVAILABLE, "The detector's store cannot be written; try again later.")
	errTokensUnavailable = phivault.Errorf(phivault.EUNAVAILABLE, "Names, addresses and phones cannot be turned into tokens now (is the vault sealed?); try again later.")
	errUnreadable        = phivault.Errorf(phivault.EINVALID, "The request body could not be read to its end.")
)

// ParseIngest is Ingest without the store: it returns the records of the
// good lines (with Seq 0) and the report of the bad ones. Access events
// get Stream StreamIngest; users and patients are namespaced "system:id".
//
// Access lines (NDJSON, no Tokenizer needed) of a request bounded by
// MaxBytes are parsed on every core (GOMAXPROCS), a chunk of lines at a
// time, with the same records, report and errors as one pass would give.
func ParseIngest(ctx context.Context, tok Tokenizer, kind, contentType string, r io.Reader, opts IngestOptions) ([]Record, *IngestReport, error) {
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultIngestMaxBytes
	}
	if opts.MaxLines == 0 {
		opts.MaxLines = DefaultIngestMaxLines
	}
	if opts.MaxLine <= 0 {
		opts.MaxLine = DefaultIngestMaxLine
	}
	switch kind {
	case IngestAccess, IngestStaff, IngestPatients, IngestRelationships:
	default:
		return nil, nil, phivault.Errorf(phivault.ENOTFOUND, "Unknown ingest kind; use access, staff, patients or relationships.")
	}
	csvInput, err := parseContentType(kind, contentType)
	if err != nil {
		return nil, nil, err
	}
	if opts.System != "" {
		if systemReason(opts.System) != "" {
			return nil, nil, phivault.Errorf(phivault.EINVALID, "The system parameter may hold only letters, digits, '.', '_' and '-', at most 64 of them.")
		}
	}
	if opts.MaxBytes > 0 {
		r = &capReader{r: r, left: opts.MaxBytes}
	}
	p := &ingestParser{ctx: ctx, tok: tok, kind: kind, opts: opts, rep: &IngestReport{Kind: kind}}
	switch workers := runtime.GOMAXPROCS(0); {
	case csvInput:
		err = p.readCSV(r)
	case kind == IngestAccess && opts.MaxBytes > 0 && workers > 1:
		err = p.readNDJSONConcurrently(r, accessChunk, workers)
	default:
		err = p.readNDJSON(r, 1)
	}
	if err == nil {
		err = p.flushTokens()
	}
	if err != nil {
		clear(p.values)
		return nil, nil, err
	}
	return p.recs, p.rep, nil
}

// parseContentType reports whether contentType is CSV (else NDJSON), or
// refuses it.
func parseContentType(kind, contentType string) (csvInput bool, err error) {
	mt, params, perr := mime.ParseMediaType(contentType)
	if perr == nil {
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
			return false, phivault.Errorf(phivault.EUNSUPPORTED, "Ingestion reads UTF-8 only.")
		}
		switch mt {
		case ContentNDJSON, "application/ndjson":
			return false, nil
		case ContentCSV:
			if kind != IngestAccess {
				return true, nil
			}
			return false, phivault.Errorf(phivault.EUNSUPPORTED, "Access events are sent as NDJSON (Content-Type: application/x-ndjson).")
		}
	}
	if kind == IngestAccess {
		return false, phivault.Errorf(phivault.EUNSUPPORTED, "Access events are sent as NDJSON (Content-Type: application/x-ndjson).")
	}
	return false, phivault.Errorf(phivault.EUNSUPPORTED, "Rosters and relationships are sent as NDJSON (application/x-ndjson) or CSV with a header (text/csv).")
}

// capReader fails with errTooLarge once more than left bytes were read.
type capReader struct {
	r    io.Reader
	left int64
}

var errTooLarge = errors.New("input over the size limit")

func (c *capReader) Read(b []byte) (int, error) {
	if c.left < 0 {
		return 0, errTooLarge
	}
	if int64(len(b)) > c.left+1 {
		b = b[:c.left+1]
	}
	n, err := c.r.Read(b)
	c.left -= int64(n)
	if c.left < 0 {
		return 0, errTooLarge
	}
	return n, err
}

// ingestParser turns lines into records.
type ingestParser struct {
	ctx  context.Context
	tok  Tokenizer
	kind string
	opts IngestOptions
	rep  *IngestReport
	recs []Record
	// Roster lines waiting for their tokens: the values of each, in
	// order, in values. The plaintext lives here until flushTokens.
	pend   []pendingPerson
	values []phivault.IndexValue
	// Access lines are decoded into line, and their events cut from
	// events, to spare an allocation each.
	line   accessLine
	events []Event
	// err is why a parser of readNDJSONConcurrently stopped.
	err error
}

type pendingPerson struct {
	rec int // index in recs
	n   int // its values
}

// fail records a rejected line.
func (p *ingestParser) fail(line int, field, reason string) {
	p.rep.Rejected++
	if len(p.rep.Errors) < MaxIngestErrors {
		p.rep.Errors = append(p.rep.Errors, LineError{Line: line, Field: field, Reason: reason})
	}
}

// readErr turns a failed read into the request's error.
func (p *ingestParser) readErr(err error) error {
	if errors.Is(err, errTooLarge) {
		return phivault.Errorf(phivault.ETOOLARGE, "The request is over %d bytes; send it in smaller parts.", p.opts.MaxBytes)
	}
	return errors.Join(errUnreadable, fmt.Errorf("detect: read %s: %w", p.kind, err))
}

func (p *ingestParser) tooManyLines() error {
	return phivault.Errorf(phivault.ETOOLARGE, "The request is over %d lines; send it in smaller parts.", p.opts.MaxLines)
}

// checkpoint is called every few lines: it stops on a cancelled context.
func (p *ingestParser) checkpoint(line int) error {
	if line%1024 == 0 {
		return p.ctx.Err()
	}
	return nil
}

// readNDJSON parses the lines of r, numbered from first.
func (p *ingestParser) readNDJSON(r io.Reader, first int) error {
	br := bufio.NewReaderSize(r, p.opts.MaxLine+2) // the line, "\r\n"
	for n := first; ; n++ {
		b, err := br.ReadSlice('\n')
		if len(b) == 0 && err == io.EOF {
			return nil
		}
		if p.opts.MaxLines > 0 && n > p.opts.MaxLines {
			return p.tooManyLines()
		}
		if err := p.checkpoint(n); err != nil {
			return err
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			p.fail(n, "", fmt.Sprintf("line longer than %d bytes", p.opts.MaxLine))
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err == io.EOF {
				return nil
			} else if err != nil {
				return p.readErr(err)
			}
			continue
		}
		if err != nil && err != io.EOF {
			return p.readErr(err)
		}
		if len(bytes.TrimRight(b, "\r\n")) > p.opts.MaxLine {
			p.fail(n, "", fmt.Sprintf("line longer than %d bytes", p.opts.MaxLine))
		} else if line := bytes.TrimSpace(b); len(line) > 0 {
			if err := p.parseJSONLine(n, line); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}

// accessChunk is about how many bytes of an access request one parser
// takes at a time in readNDJSONConcurrently: a few thousand lines, so
// that a request of DefaultIngestMaxLines keeps every core busy.
const accessChunk = 1 << 20

// readNDJSONConcurrently is readNDJSON on up to workers goroutines, for
// access lines (which need no Tokenizer): it reads r in chunks of about
// chunk bytes that end at a line end, parses each chunk with a parser of
// its own, its lines numbered from where the chunk starts, and joins
// their records and reports in order. The result is readNDJSON's. A
// chunk holds whole lines, so a line longer than chunk makes its chunk
// longer: r must be bounded (MaxBytes). Lines are counted as chunks are
// read, so a request over MaxLines is refused before the rest is read.
func (p *ingestParser) readNDJSONConcurrently(r io.Reader, chunk, workers int) error {
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	var (
		parts []*ingestParser
		wg    sync.WaitGroup
		sem   = make(chan struct{}, workers)
		next  = 1 // the number of the next chunk's first line
		// Parsing copies what it keeps, so a chunk's buffer is read
		// into again once its parser is done.
		bufs = make(chunkBuffers, workers+1)
	)
	parse := func(b, buf []byte) error {
		first := next
		if err := p.countLines(&next, b); err != nil {
			return err
		}
		part := &ingestParser{ctx: ctx, kind: p.kind, opts: p.opts, rep: &IngestReport{Kind: p.kind}}
		parts = append(parts, part)
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if part.err = part.readNDJSON(bytes.NewReader(b), first); part.err != nil {
				cancel()
			}
			bufs.put(buf)
		})
		return nil
	}
	rest, err := readLineChunks(r, chunk, bufs, parse)
	var re *chunkReadError
	if errors.As(err, &re) {
		// As readNDJSON, which reaches line MaxLines+1 before the failed read.
		if err = p.countLines(&next, rest); err == nil {
			err = p.readErr(re.err)
		}
	}
	if err != nil {
		cancel()
	}
	wg.Wait()
	if err != nil {
		return err
	}
	for _, part := range parts {
		if part.err != nil {
			return part.err
		}
	}
	p.join(parts)
	return nil
}

// countLines adds the lines of b to *next, the number of the line after
// those counted, or refuses the request once over MaxLines.
func (p *ingestParser) countLines(next *int, b []byte) error {
	*next += lineCount(b)
	if p.opts.MaxLines > 0 && *next-1 > p.opts.MaxLines {
		return p.tooManyLines()
	}
	return nil
}

// lineCount returns the lines of b as readNDJSON numbers them: each
// '\n' ends one, and bytes after the last start one more.
func lineCount(b []byte) int {
	n := bytes.Count(b, []byte{'\n'})
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

// join appends the records and reports of parts, in order, to p's.
func (p *ingestParser) join(parts []*ingestParser) {
	n := 0
	for _, part := range parts {
		n += len(part.recs)
	}
	p.recs = slices.Grow(p.recs, n)
	for _, part := range parts {
		p.recs = append(p.recs, part.recs...)
		p.rep.Accepted += part.rep.Accepted
		p.rep.Rejected += part.rep.Rejected
		room := MaxIngestErrors - len(p.rep.Errors)
		p.rep.Errors = append(p.rep.Errors, part.rep.Errors[:min(room, len(part.rep.Errors))]...)
	}
}

// readLineChunks reads r to its end in chunks of at least size bytes
// that end just after a '\n' (the last chunk may be shorter and end
// otherwise), and calls fn with each and the buffer that holds it, which
// fn gives back to bufs once done with the chunk. A line longer than size
// makes its chunk longer. It stops at fn's first error, and returns it;
// on a failed read it returns a *chunkReadError and the bytes read since
// the last chunk.
func readLineChunks(r io.Reader, size int, bufs chunkBuffers, fn func(chunk, buf []byte) error) (rest []byte, err error) {
	var carry []byte
	for {
		// carry may be the end of the buffer bufs gives back: copy
		// moves it to the start.
		buf := bufs.get(len(carry) + max(size, len(carry)))
		copy(buf, carry)
		n, err := io.ReadFull(r, buf[len(carry):])
		full := buf
		buf = buf[:len(carry)+n]
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			if len(buf) == 0 {
				return nil, nil
			}
			return nil, fn(buf, full)
		case err != nil:
			return buf, &chunkReadError{err}
		}
		cut := bytes.LastIndexByte(buf, '\n') + 1
		carry = buf[cut:]
		if cut > 0 {
			if err := fn(buf[:cut:cut], full); err != nil {
				return nil, err
			}
		}
	}
}

// chunkBuffers holds buffers of readLineChunks to read into again.
type chunkBuffers chan []byte

// get returns a buffer of size bytes: one given back, or a new one.
func (c chunkBuffers) get(size int) []byte {
	select {
	case b := <-c:
		if cap(b) >= size {
			return b[:size]
		}
	default:
	}
	return make([]byte, size)
}

// put gives b back, or drops it if enough are held.
func (c chunkBuffers) put(b []byte) {
	select {
	case c <- b:
	default:
	}
}

// chunkReadError is a failed read of readLineChunks.
type chunkReadError struct{ err error }

func (e *chunkReadError) Error() string { return e.err.Error() }
func (e *chunkReadError) Unwrap() error { return e.err }

func (p *ingestParser) parseJSONLine(n int, line []byte) error {
	if line[0] != '{' {
		p.fail(n, "", "not a JSON object")
		return nil
	}
	if p.kind == IngestAccess {
		p.line = accessLine{}
		if err := json.Unmarshal(line, &p.line); err != nil {
			field, reason := jsonReason(err)
			p.fail(n, field, reason)
			return nil
		}
		p.access(n, &p.line)
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil {
		field, reason := jsonReason(err)
		p.fail(n, field, reason)
		return nil
	}
	r, field, reason := rowFromJSON(p.kind, obj)
	if reason != "" {
		p.fail(n, field, reason)
		return nil
	}
	return p.roster(n, &r)
}

// jsonReason returns the field and reason of a JSON decoding error,
// without the value (encoding/json's own messages may quote the input).
func jsonReason(err error) (field, reason string) {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return "", "not a JSON object"
		}
		return te.Field, "wrong JSON type"
	}
	return "", "not valid JSON"
}

// recordCap is the reader under a csv.Reader. A quoted field may span
// lines, so without it a record (one unclosed quote) is bounded only by
// the request: it lets the csv.Reader read at most limit bytes in all,
// which readCSV moves past the end of each record it takes.
type recordCap struct {
	r     io.Reader
	read  int64
	limit int64
}

var errRecordTooLong = errors.New("CSV record over the line limit")

func (c *recordCap) Read(b []byte) (int, error) {
	if c.read >= c.limit {
		return 0, errRecordTooLong
	}
	if int64(len(b)) > c.limit-c.read {
		b = b[:c.limit-c.read]
	}
	n, err := c.r.Read(b)
	c.read += int64(n)
	return n, err
}

// csvReadAhead is how far a csv.Reader reads beyond what it parsed (its
// bufio.Reader's default size).
const csvReadAhead = 4096

// next allows the record starting at offset to take up to maxLine
// bytes, and its line end, besides what the csv.Reader reads ahead.
func (c *recordCap) next(offset int64, maxLine int) {
	c.limit = offset + int64(maxLine) + 2 + csvReadAhead
}

func (p *ingestParser) readCSV(r io.Reader) error {
	rc := &recordCap{r: r}
	rc.next(0, p.opts.MaxLine)
	cr := csv.NewReader(rc)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		var pe *csv.ParseError
		switch {
		case err == io.EOF:
			return nil
		case errors.Is(err, errRecordTooLong):
			return phivault.Errorf(phivault.EINVALID, "The CSV header (line 1) is longer than %d bytes.", p.opts.MaxLine)
		case errors.As(err, &pe):
			return phivault.Errorf(phivault.EINVALID, "The CSV header (line 1) is not valid CSV.")
		}
		return p.readErr(err)
	}
	cols, err := csvColumns(p.kind, header, p.opts.System != "")
	if err != nil {
		return err
	}
	lastLine := 1 // of the last record read
	for rows := 1; ; rows++ {
		rc.next(cr.InputOffset(), p.opts.MaxLine)
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if errors.Is(err, errRecordTooLong) {
			// Where the record ends cannot be told (its quote may never
			// close), so nothing after it is read.
			p.fail(lastLine+1, "", fmt.Sprintf("line longer than %d bytes (an unclosed quote?); the lines after it were not read", p.opts.MaxLine))
			return nil
		}
		if p.opts.MaxLines > 0 && rows > p.opts.MaxLines {
			return p.tooManyLines()
		}
		if err := p.checkpoint(rows); err != nil {
			return err
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			lastLine = pe.Line
			switch {
			case errors.Is(pe.Err, csv.ErrFieldCount):
				p.fail(pe.StartLine, "", fmt.Sprintf("row has %d fields, the header %d", len(rec), len(header)))
			case errors.Is(pe.Err, csv.ErrQuote), errors.Is(pe.Err, csv.ErrBareQuote):
				p.fail(pe.StartLine, "", "misplaced quote")
			default:
				p.fail(pe.StartLine, "", "not valid CSV")
			}
			continue
		} else if err != nil {
			return p.readErr(err)
		}
		line, _ := cr.FieldPos(0)
		lastLine = line
		if n := len(rec); n > 0 {
			lastLine, _ = cr.FieldPos(n - 1)
		}
		size := 0
		for _, f := range rec {
			size += len(f) + 1
		}
		if size > p.opts.MaxLine {
			p.fail(line, "", fmt.Sprintf("line longer than %d bytes", p.opts.MaxLine))
			continue
		}
		r := rowFromCSV(p.kind, cols, rec)
		if err := p.roster(line, &r); err != nil {
			return err
		}
	}
}

// Fields of ingested lines: NDJSON member names and CSV column names.
const (
	fieldTime         = "time"
	fieldSystem       = "system"
	fieldUser         = "user"
	fieldRole         = "role"
	fieldDepartment   = "department"
	fieldPatient      = "patient"
	fieldAction       = "action"
	fieldResourceType = "resource_type"
	fieldSource       = "source_address"
	fieldResultCount  = "result_count"
	fieldOutcome      = "outcome"

	fieldID         = "id"
	fieldFamily     = "family"
	fieldAddress    = "address"
	fieldPostalCode = "postal_code"
	fieldPhone      = "phone"
	fieldStatus     = "status"
	fieldLabels     = "labels"
	fieldDeceased   = "deceased"
	fieldEmployee   = "employee"

	fieldKind  = "kind"
	fieldStart = "start"
	fieldEnd   = "end"
)

// rosterFields are the fields each roster kind reads, in the order they
// are checked, and their shape. Any other field or column (given names,
// birth dates, …) is ignored unread.
var rosterFields = map[string][]rosterField{
	IngestStaff: {
		{fieldSystem, shapeString}, {fieldID, shapeString}, {fieldFamily, shapeList},
		{fieldAddress, shapeList}, {fieldPostalCode, shapeString}, {fieldPhone, shapeList},
		{fieldDepartment, shapeString}, {fieldRole, shapeList}, {fieldStatus, shapeString},
		{fieldPatient, shapeString},
	},
	IngestPatients: {
		{fieldSystem, shapeString}, {fieldID, shapeString}, {fieldFamily, shapeList},
		{fieldAddress, shapeList}, {fieldPostalCode, shapeString}, {fieldPhone, shapeList},
		{fieldDepartment, shapeString}, {fieldLabels, shapeList}, {fieldDeceased, shapeBool},
		{fieldEmployee, shapeString},
	},
	IngestRelationships: {
		{fieldSystem, shapeString}, {fieldUser, shapeString}, {fieldPatient, shapeString},
		{fieldKind, shapeString}, {fieldStart, shapeString}, {fieldEnd, shapeString},
	},
}

type rosterField struct {
	name  string
	shape fieldShape
}

// requiredColumns must be in a CSV header (system too, unless the request
// names it).
var requiredColumns = map[string][]string{
	IngestStaff:         {fieldID},
	IngestPatients:      {fieldID},
	IngestRelationships: {fieldUser, fieldPatient, fieldKind},
}

type fieldShape int

const (
	shapeString fieldShape = iota
	shapeList              // NDJSON: a string or an array of strings; CSV: values separated by ";"
	shapeBool              // NDJSON: a boolean or a string; CSV: true/false, yes/no, 1/0, or empty
)

// listSeparator separates the values of a list field given as one string.
const listSeparator = ";"

// row is a roster line's fields, whatever its format: plaintext until
// roster turns it into a record.
type row map[string][]string

func (r row) str(field string) string {
	if v := r[field]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// splitList returns the non-empty values of s, separated by ";".
func splitList(s string) []string {
	var out []string
	for v := range strings.SplitSeq(s, listSeparator) {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// rowFromJSON reads the fields of kind from obj; on a field of the wrong
// type it returns the field and the reason.
func rowFromJSON(kind string, obj map[string]json.RawMessage) (r row, field, reason string) {
	r = row{}
	for _, f := range rosterFields[kind] {
		raw, ok := obj[f.name]
		if !ok || string(raw) == "null" {
			continue
		}
		var s string
		isString := json.Unmarshal(raw, &s) == nil
		switch f.shape {
		case shapeString:
			if !isString {
				return nil, f.name, "wrong JSON type (want a string)"
			}
			r[f.name] = []string{strings.TrimSpace(s)}
		case shapeList:
			if isString {
				r[f.name] = splitList(s)
				continue
			}
			var l []string
			if json.Unmarshal(raw, &l) != nil {
				return nil, f.name, "wrong JSON type (want a string or an array of strings)"
			}
			for _, v := range l {
				if v = strings.TrimSpace(v); v != "" {
					r[f.name] = append(r[f.name], v)
				}
			}
		case shapeBool:
			var b bool
			switch {
			case isString:
				r[f.name] = []string{s}
			case json.Unmarshal(raw, &b) == nil:
				r[f.name] = []string{strconv.FormatBool(b)}
			default:
				return nil, f.name, "wrong JSON type (want a boolean)"
			}
		}
	}
	return r, "", ""
}

// rowFromCSV reads the columns cols of rec.
func rowFromCSV(kind string, cols map[string]int, rec []string) row {
	r := row{}
	for _, f := range rosterFields[kind] {
		i, ok := cols[f.name]
		if !ok {
			continue
		}
		if f.shape == shapeList {
			r[f.name] = splitList(rec[i])
		} else if v := strings.TrimSpace(rec[i]); v != "" {
			r[f.name] = []string{v}
		}
	}
	return r
}

// csvColumns maps each known column of header to its index.
func csvColumns(kind string, header []string, systemGiven bool) (map[string]int, error) {
	cols := map[string]int{}
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\uFEFF")
		}
		h = strings.ToLower(strings.TrimSpace(h))
		known := false
		for _, f := range rosterFields[kind] {
			known = known || f.name == h
		}
		if !known {
			continue
		}
		if _, dup := cols[h]; dup {
			return nil, phivault.Errorf(phivault.EINVALID, "The CSV header names column %q twice.", h)
		}
		cols[h] = i
	}
	for _, c := range requiredColumns[kind] {
		if _, ok := cols[c]; !ok {
			return nil, phivault.Errorf(phivault.EINVALID, "The CSV header has no %q column.", c)
		}
	}
	if _, ok := cols[fieldSystem]; !ok && !systemGiven {
		return nil, phivault.Errorf(phivault.EINVALID, "The CSV header has no \"system\" column and the request names no system (?system=).")
	}
	return cols, nil
}

// accessLine is one line of an access log, as sent.
type accessLine struct {
	Time          string          `json:"time"`
	System        string          `json:"system"`
	User          string          `json:"user"`
	Role          string          `json:"role"`
	Department    string          `json:"department"`
	Patient       string          `json:"patient"`
	Patients      json.RawMessage `json:"patients"`
	Action        string          `json:"action"`
	ResourceType  string          `json:"resource_type"`
	SourceAddress string          `json:"source_address"`
	ResultCount   json.RawMessage `json:"result_count"`
	Outcome       string          `json:"outcome"`
	Purpose       string          `json:"purpose"`
	SearchParams  json.RawMessage `json:"search_params"`
}

// ingestActions maps the actions of access logs to Event actions.
var ingestActions = map[string]string{
	"read":         phivault.ActionRead,
	"search":       phivault.ActionSearch,
	"create":       phivault.ActionCreate,
	"update":       phivault.ActionUpdate,
	"delete":       phivault.ActionDelete,
	"export":       phivault.ActionExport,
	"print":        ActionPrint,
	"login":        phivault.ActionLogin,
	"login-failed": ActionLoginFailed,
	"break-glass":  phivault.ActionBreakGlass,
}

// Fields of access lines that rosters do not have.
const (
	fieldPurpose      = "purpose"
	fieldSearchParams = "search_params"
	fieldPatients     = "patients"
)

// MaxIngestPatients bounds the patients of one access line (a search or
// an export of many): it caps the work and memory a line costs, beside
// the line's byte limit (DefaultIngestMaxLine). An event of more is sent
// as several lines.
const MaxIngestPatients = 1000

// Bounds of an access line's search parameter names. They are names
// (family, name:exact, subject.name), never values: a name is a short
// token, so a value sent by mistake ("family=Smith", "Smith John") is
// refused rather than stored.
const (
	maxSearchParams   = 32
	maxSearchParamLen = 64
)

// Bounds of ingested values, in bytes.
const (
	maxIDLen   = 256 // user, patient and staff ids
	maxNameLen = 128 // roles, departments, resource types, labels, kinds, outcomes
)

// access turns line n into an access event.
func (p *ingestParser) access(n int, a *accessLine) {
	sys, field, reason := p.system(a.System)
	if reason != "" {
		p.fail(n, field, reason)
		return
	}
	at, err := time.Parse(time.RFC3339, strings.TrimSpace(a.Time))
	switch {
	case strings.TrimSpace(a.Time) == "":
		p.fail(n, fieldTime, "required")
		return
	case err != nil:
		p.fail(n, fieldTime, "not an RFC 3339 time")
		return
	}
	user := strings.TrimSpace(a.User)
	if reason := idReason(user); reason != "" {
		p.fail(n, fieldUser, reason)
		return
	}
	if len(p.events) == 0 {
		p.events = make([]Event, 256)
	}
	ev := &p.events[0]
	*ev = Event{Stream: StreamIngest, Time: at.UTC(), System: sys, User: sys + ":" + user, OK: true, Outcome: "ok"}
	action, ok := ingestActions[strings.ToLower(strings.TrimSpace(a.Action))]
	if !ok {
		if strings.TrimSpace(a.Action) == "" {
			p.fail(n, fieldAction, "required")
		} else {
			p.fail(n, fieldAction, "not one of read, search, create, update, delete, export, print, login, login-failed, break-glass")
		}
		return
	}
	ev.Action = action
	if ev.Patients, field, reason = linePatients(sys, a); reason != "" {
		p.fail(n, field, reason)
		return
	}
	if role := strings.ToLower(strings.TrimSpace(a.Role)); role != "" {
		if reason := textReason(role, maxNameLen); reason != "" {
			p.fail(n, fieldRole, reason)
			return
		}
		ev.Roles = []string{role}
	}
	ev.Department = strings.TrimSpace(a.Department)
	if reason := textReason(ev.Department, maxNameLen); reason != "" {
		p.fail(n, fieldDepartment, reason)
		return
	}
	ev.ResourceType = strings.TrimSpace(a.ResourceType)
	if reason := textReason(ev.ResourceType, maxNameLen); reason != "" {
		p.fail(n, fieldResourceType, reason)
		return
	}
	if src := strings.TrimSpace(a.SourceAddress); src != "" {
		addr, ok := parseSource(src)
		if !ok {
			p.fail(n, fieldSource, "not an IP address")
			return
		}
		ev.Source = addr
	}
	if raw := bytes.TrimSpace(a.ResultCount); len(raw) > 0 && string(raw) != "null" {
		c, err := strconv.ParseInt(string(raw), 10, 32)
		switch {
		case err != nil:
			p.fail(n, fieldResultCount, "not a whole number")
			return
		case c < 0:
			p.fail(n, fieldResultCount, "negative")
			return
		}
		ev.Count = int(c)
	}
	outcome, reason := parseOutcome(a.Outcome)
	if reason != "" {
		p.fail(n, fieldOutcome, reason)
		return
	}
	if outcome != "ok" {
		ev.OK, ev.Outcome = false, outcome
	}
	// A failed login is ActionLoginFailed, whichever way the log says it,
	// as FromEntry does for phivault's own.
	if ev.Action == phivault.ActionLogin && !ev.OK {
		ev.Action = ActionLoginFailed
	}
	if ev.Action == ActionLoginFailed && ev.OK {
		ev.OK, ev.Outcome = false, phivault.EUNAUTHORIZED
	}
	ev.Purpose = strings.TrimSpace(a.Purpose)
	if reason := textReason(ev.Purpose, maxNameLen); reason != "" {
		p.fail(n, fieldPurpose, reason)
		return
	}
	if ev.Params, reason = searchParams(a.SearchParams); reason != "" {
		p.fail(n, fieldSearchParams, reason)
		return
	}
	p.events = p.events[1:]
	p.rep.Accepted++
	p.recs = append(p.recs, Record{Kind: RecordAccess, Event: ev})
}

// linePatients returns the patients of access line a, namespaced in
// sys: its patient, or its patients in order without duplicates. Else
// the field at fault and why, by the entry's position, never its value.
// It reads a alone, so lines may be checked in any order.
func linePatients(sys string, a *accessLine) (patients []string, field, reason string) {
	ids, reason := patientList(a.Patients)
	if reason != "" {
		return nil, fieldPatients, reason
	}
	patient := strings.TrimSpace(a.Patient)
	if patient != "" && len(ids) > 0 {
		return nil, fieldPatients, "given with patient: send one or the other"
	}
	if patient != "" {
		if reason := textReason(patient, maxIDLen); reason != "" {
			return nil, fieldPatient, reason
		}
		return []string{sys + ":" + patient}, "", ""
	}
	if len(ids) == 0 {
		return nil, "", ""
	}
	patients = make([]string, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for i, id := range ids {
		id = strings.TrimSpace(id)
		if reason := idReason(id); reason != "" {
			return nil, fieldPatients, fmt.Sprintf("patient %d: %s", i+1, reason)
		}
		if id = sys + ":" + id; !seen[id] {
			seen[id] = true
			patients = append(patients, id)
		}
	}
	return patients, "", ""
}

// patientList decodes the patients field raw: absent, null or an array
// of at most MaxIngestPatients strings. Else it says why not, without the
// value.
func patientList(raw json.RawMessage) ([]string, string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, ""
	}
	// ids escapes to the heap (json.Unmarshal): declared here, it costs
	// the lines without patients nothing.
	var ids []string
	if json.Unmarshal(raw, &ids) != nil {
		return nil, "wrong JSON type (want an array of strings)"
	}
	if len(ids) > MaxIngestPatients {
		return nil, fmt.Sprintf("more than %d patients; send the event as several lines", MaxIngestPatients)
	}
	return ids, ""
}

// searchParams returns the search parameter names of raw: absent or
// null, a string of names separated by ";", or an array of strings, as
// roster list fields are. Else it says why not, by the entry's position,
// never its value.
func searchParams(raw json.RawMessage) (names []string, reason string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, ""
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		names = splitList(one)
	} else {
		var list []string
		if json.Unmarshal(raw, &list) != nil {
			return nil, "wrong JSON type (want a string or an array of strings)"
		}
		for _, v := range list {
			if v = strings.TrimSpace(v); v != "" {
				names = append(names, v)
			}
		}
	}
	if len(names) > maxSearchParams {
		return nil, fmt.Sprintf("more than %d names", maxSearchParams)
	}
	for i, name := range names {
		if reason := searchParamReason(name); reason != "" {
			return nil, fmt.Sprintf("name %d %s", i+1, reason)
		}
	}
	return names, ""
}

// searchParamReason says why s is not a search parameter name, or "".
func searchParamReason(s string) string {
	if len(s) > maxSearchParamLen {
		return fmt.Sprintf("is longer than %d bytes", maxSearchParamLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == ':':
		case c == '=':
			return "holds a value (name=value): send parameter names only"
		default:
			return "may hold only letters, digits, '-', '_', '.' and ':' (send parameter names, not values)"
		}
	}
	return ""
}

// system returns the system of a line: its own, or the request's.
func (p *ingestParser) system(own string) (sys, field, reason string) {
	sys = strings.TrimSpace(own)
	if sys == "" {
		sys = p.opts.System
	}
	if reason := systemReason(sys); reason != "" {
		return "", fieldSystem, reason
	}
	return sys, "", ""
}

// systemReason says why s is not a system name, or "". A system prefixes
// ids ("system:id"), so it may not hold a ":".
func systemReason(s string) string {
	switch {
	case s == "":
		return "required"
	case len(s) > 64:
		return "longer than 64 bytes"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return "may hold only letters, digits, '.', '_' and '-'"
		}
	}
	return ""
}

// idReason says why id is not a user, patient or staff id, or "".
func idReason(id string) string {
	if id == "" {
		return "required"
	}
	return textReason(id, maxIDLen)
}

// textReason says why s is not text of at most max bytes, or "".
func textReason(s string, max int) string {
	if len(s) > max {
		return fmt.Sprintf("longer than %d bytes", max)
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return "not valid UTF-8"
		case unicode.IsControl(r):
			return "holds a control character"
		}
		i += size
	}
	return ""
}

// codeReason says why s is not a code (letters, digits, '.', '_', '-',
// at most maxNameLen bytes), or "".
func codeReason(s string) string {
	if len(s) > maxNameLen {
		return fmt.Sprintf("longer than %d bytes", maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return "may hold only letters, digits, '.', '_' and '-'"
		}
	}
	return ""
}

// parseSource returns the IP address of s, an address or address:port.
func parseSource(s string) (string, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Is4() {
			return s, true // already canonical: netip accepts no leading zeros
		}
		return a.Unmap().WithZone("").String(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("").String(), true
	}
	return "", false
}

// parseOutcome returns the Event outcome of an access log's: "ok" for
// success, the phivault code for a refusal, or the log's own code.
func parseOutcome(s string) (outcome, reason string) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch s {
	case "", "ok", "success", "succeeded":
		return "ok", ""
	case "denied", "forbidden", "refused":
		return phivault.EFORBIDDEN, ""
	}
	if reason := codeReason(s); reason != "" {
		return "", reason
	}
	return s, ""
}

// roster turns roster line n into a record, holding its person's
// plaintext until flushTokens.
func (p *ingestParser) roster(n int, r *row) error {
	sys, field, reason := p.system(r.str(fieldSystem))
	if reason != "" {
		p.fail(n, field, reason)
		return nil
	}
	ns := func(id string) string { return sys + ":" + id }
	var rec Record
	switch p.kind {
	case IngestStaff:
		u := &User{}
		if field, reason := p.staff(r, u, ns); reason != "" {
			p.fail(n, field, reason)
			return nil
		}
		rec = Record{Kind: RecordStaff, User: u}
	case IngestPatients:
		pt := &Patient{}
		if field, reason := p.patient(r, pt, ns); reason != "" {
			p.fail(n, field, reason)
			return nil
		}
		rec = Record{Kind: RecordPatient, Patient: pt}
	case IngestRelationships:
		rel, field, reason := relationship(r, sys)
		if reason != "" {
			p.fail(n, field, reason)
			return nil
		}
		p.rep.Accepted++
		p.recs = append(p.recs, Record{Kind: RecordRelationship, Relationship: rel})
		return nil
	}
	p.rep.Accepted++
	values := PersonValues(personData(r))
	if len(values) > 0 {
		p.pend = append(p.pend, pendingPerson{rec: len(p.recs), n: len(values)})
		p.values = append(p.values, values...)
	}
	p.recs = append(p.recs, rec)
	if rec.Patient != nil && decoyLabelled(r) {
		p.recs = append(p.recs, Record{Kind: RecordHoneytoken, Honeytoken: rec.Patient.ID})
	}
	if len(p.pend) >= tokenChunk {
		return p.flushTokens()
	}
	return nil
}

// personData returns the plaintext person of a roster line.
func personData(r *row) PersonData {
	d := PersonData{Family: (*r)[fieldFamily], Phones: (*r)[fieldPhone]}
	if lines, postal := (*r)[fieldAddress], r.str(fieldPostalCode); len(lines) > 0 || postal != "" {
		d.Addresses = []Address{{Lines: lines, PostalCode: postal}}
	}
	return d
}

func (p *ingestParser) staff(r *row, u *User, ns func(string) string) (field, reason string) {
	id := r.str(fieldID)
	if reason := idReason(id); reason != "" {
		return fieldID, reason
	}
	u.ID = ns(id)
	for _, role := range (*r)[fieldRole] {
		role = strings.ToLower(role)
		if reason := textReason(role, maxNameLen); reason != "" {
			return fieldRole, reason
		}
		u.Roles = append(u.Roles, role)
	}
	u.Department = r.str(fieldDepartment)
	if reason := textReason(u.Department, maxNameLen); reason != "" {
		return fieldDepartment, reason
	}
	status, ok := staffStatuses[strings.ToLower(r.str(fieldStatus))]
	if !ok {
		return fieldStatus, "not one of active, suspended, deprovisioned"
	}
	u.Status = status
	if own := r.str(fieldPatient); own != "" {
		if reason := textReason(own, maxIDLen); reason != "" {
			return fieldPatient, reason
		}
		u.Patient = ns(own)
	}
	return "", ""
}

// staffStatuses maps the statuses a staff roster may give (and common
// synonyms) to account statuses.
var staffStatuses = map[string]string{
	"":              "",
	"active":        phivault.AccountActive,
	"suspended":     phivault.AccountSuspended,
	"inactive":      phivault.AccountSuspended,
	"disabled":      phivault.AccountSuspended,
	"locked":        phivault.AccountSuspended,
	"deprovisioned": phivault.AccountDeprovisioned,
	"terminated":    phivault.AccountDeprovisioned,
	"deleted":       phivault.AccountDeprovisioned,
}

// labelAliases maps the labels a patient roster may give, lowercased, to
// the labels detectors act on; other labels are kept as given.
var labelAliases = map[string]string{
	"vip": LabelVIP, "r": LabelRestricted, "restricted": LabelRestricted,
	"emp": LabelEmployee, "employee": LabelEmployee,
}

func (p *ingestParser) patient(r *row, pt *Patient, ns func(string) string) (field, reason string) {
	id := r.str(fieldID)
	if reason := idReason(id); reason != "" {
		return fieldID, reason
	}
	pt.ID = ns(id)
	for _, l := range (*r)[fieldLabels] {
		if strings.EqualFold(l, LabelDecoy) {
			continue // a Record of its own (roster), not a mark on the patient
		}
		if alias, ok := labelAliases[strings.ToLower(l)]; ok {
			l = alias
		} else if reason := textReason(l, maxNameLen); reason != "" {
			return fieldLabels, reason
		}
		if !slices.Contains(pt.Labels, l) {
			pt.Labels = append(pt.Labels, l)
		}
	}
	deceased, ok := parseBool(r.str(fieldDeceased))
	if !ok {
		return fieldDeceased, "not a boolean (true, false, yes, no, 1, 0)"
	}
	pt.Deceased = deceased
	pt.Department = r.str(fieldDepartment)
	if reason := textReason(pt.Department, maxNameLen); reason != "" {
		return fieldDepartment, reason
	}
	if emp := r.str(fieldEmployee); emp != "" {
		if reason := textReason(emp, maxIDLen); reason != "" {
			return fieldEmployee, reason
		}
		pt.Employee = ns(emp)
		if !slices.Contains(pt.Labels, LabelEmployee) {
			pt.Labels = append(pt.Labels, LabelEmployee)
		}
	}
	return "", ""
}

// LabelDecoy, among a patient roster line's labels, declares the patient
// a decoy (a honeytoken) of the sending system, as phivault honeytoken
// create does for the vault's own: the line adds a RecordHoneytoken after
// the patient's. The label itself is not kept on the patient. Decoys only
// grow: a later line without the label does not undo it.
const LabelDecoy = "honeytoken"

// decoyLabelled reports whether patient roster line r has LabelDecoy.
func decoyLabelled(r *row) bool {
	return slices.ContainsFunc((*r)[fieldLabels], func(l string) bool { return strings.EqualFold(l, LabelDecoy) })
}

func parseBool(s string) (v, ok bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "false", "no", "n", "f", "0":
		return false, true
	case "true", "yes", "y", "t", "1":
		return true, true
	}
	return false, false
}

func relationship(r *row, sys string) (rel *Relationship, field, reason string) {
	user, patient := r.str(fieldUser), r.str(fieldPatient)
	if reason := idReason(user); reason != "" {
		return nil, fieldUser, reason
	}
	if reason := idReason(patient); reason != "" {
		return nil, fieldPatient, reason
	}
	kind := strings.ToLower(r.str(fieldKind))
	if kind == "" {
		return nil, fieldKind, "required"
	}
	if reason := codeReason(kind); reason != "" {
		return nil, fieldKind, reason
	}
	rel = &Relationship{User: sys + ":" + user, Patient: sys + ":" + patient, Kind: kind, Origin: "ingest:" + sys}
	var ok bool
	if rel.Start, ok = parseWhen(r.str(fieldStart), false); !ok {
		return nil, fieldStart, "not an RFC 3339 time or a date (YYYY-MM-DD)"
	}
	if rel.End, ok = parseWhen(r.str(fieldEnd), true); !ok {
		return nil, fieldEnd, "not an RFC 3339 time or a date (YYYY-MM-DD)"
	}
	if !rel.Start.IsZero() && !rel.End.IsZero() && rel.End.Before(rel.Start) {
		return nil, fieldEnd, "before start"
	}
	return rel, "", ""
}

// parseWhen reads an RFC 3339 time or a date (UTC midnight; for an end,
// the midnight after, so the whole day is in). "" is the zero time.
func parseWhen(s string, end bool) (time.Time, bool) {
	if s == "" {
		return time.Time{}, true
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), true
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, false
	}
	if end {
		t = t.AddDate(0, 0, 1)
	}
	return t, true
}

// flushTokens turns the pending people's values into tokens, puts them
// in their records, and drops the plaintext.
func (p *ingestParser) flushTokens() error {
	if len(p.pend) == 0 {
		return nil
	}
	defer func() {
		clear(p.values)
		p.values, p.pend = p.values[:0], p.pend[:0]
	}()
	if p.tok == nil {
		return errors.Join(errTokensUnavailable, errors.New("detect: ingest: no tokenizer"))
	}
	tokens, err := p.tok.Tokens(p.ctx, p.values)
	if err != nil {
		return errors.Join(errTokensUnavailable, fmt.Errorf("detect: ingest tokens: %w", err))
	}
	if len(tokens) != len(p.values) {
		return errors.Join(errTokensUnavailable, fmt.Errorf("detect: ingest tokens: got %d for %d values", len(tokens), len(p.values)))
	}
	off := 0
	for _, pp := range p.pend {
		person := PersonFrom(p.values[off:off+pp.n], tokens[off:off+pp.n])
		off += pp.n
		switch rec := &p.recs[pp.rec]; {
		case rec.User != nil:
			rec.User.Person = person
		case rec.Patient != nil:
			rec.Patient.Person = person
		}
	}
	return nil
}
