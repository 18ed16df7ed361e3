package detect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/phivault/phivault"
)

// mixedAccessBody returns access lines of every kind readNDJSON tells
// apart, for MaxLine maxLine: good ones, bad JSON, bad fields, blank
// lines, "\r\n" ends, lines just within and just over maxLine, lines far
// over it, more bad lines than MaxIngestErrors, and a last line without
// its "\n".
func mixedAccessBody(maxLine int) []byte {
	var b bytes.Buffer
	good := func(i int) string {
		return fmt.Sprintf(`{"time":"2026-12-06T07:%02d:%02dZ","system":"ehr","user":"u%d","action":"read","patient":"p%d","result_count":%d}`,
			i/60%60, i%60, i%7, i, i%5)
	}
	padded := func(i, size int) string { // a good line of exactly size bytes
		l := good(i)
		return l[:len(l)-1] + `,"x":"` + strings.Repeat("y", size-len(l)-6) + `"}`
	}
	for i := range 3000 {
		switch i % 13 {
		case 0:
			b.WriteString("{}\n") // time required
		case 1:
			b.WriteString("\n")
		case 2:
			b.WriteString(good(i) + "\r\n")
		case 3:
			b.WriteString(`{"time":1}` + "\n") // wrong JSON type
		case 4:
			b.WriteString("not json\n")
		case 5:
			b.WriteString(padded(i, maxLine) + "\r\n") // within the limit
		case 6:
			b.WriteString(padded(i, maxLine+1) + "\n") // just over it
		case 7:
			b.WriteString(strings.Repeat("z", 5*maxLine) + "\n") // far over it
		case 8:
			b.WriteString("  \t \r\n")
		default:
			b.WriteString(good(i) + "\n")
		}
	}
	b.WriteString(good(3000)) // no "\n"
	return b.Bytes()
}

func newTestParser(ctx context.Context, opts IngestOptions) *ingestParser {
	return &ingestParser{ctx: ctx, kind: IngestAccess, opts: opts, rep: &IngestReport{Kind: IngestAccess}}
}

// The concurrent parse of an access request gives exactly the sequential
// parse's records and report, wherever the chunks are cut (every chunk
// size from 1 byte cuts some line at each of its bytes), on any number of
// workers.
func TestReadNDJSONConcurrently_sameAsSequential(t *testing.T) {
	const maxLine = 300
	opts := IngestOptions{System: "dflt", MaxBytes: DefaultIngestMaxBytes, MaxLines: DefaultIngestMaxLines, MaxLine: maxLine}
	body := mixedAccessBody(maxLine)
	ctx := context.Background()
	seq := newTestParser(ctx, opts)
	if err := seq.readNDJSON(bytes.NewReader(body), 1); err != nil {
		t.Fatal(err)
	}
	if seq.rep.Accepted < 1000 || seq.rep.Rejected <= MaxIngestErrors || len(seq.rep.Errors) != MaxIngestErrors {
		t.Fatalf("sequential parse: %d accepted, %d rejected, %d errors listed: the input does not cover the cap",
			seq.rep.Accepted, seq.rep.Rejected, len(seq.rep.Errors))
	}
	for _, chunk := range []int{1, 2, 7, 64, maxLine - 1, maxLine, maxLine + 1, maxLine + 2, 4096, 1 << 20} {
		for _, workers := range []int{1, 2, 3} {
			con := newTestParser(ctx, opts)
			// One byte at a time from the reader, to cut reads anywhere too.
			if err := con.readNDJSONConcurrently(iotest.HalfReader(bytes.NewReader(body)), chunk, workers); err != nil {
				t.Fatalf("chunk %d, %d workers: %v", chunk, workers, err)
			}
			if !reflect.DeepEqual(con.recs, seq.recs) {
				t.Errorf("chunk %d, %d workers: %d records differ from the sequential parse's %d", chunk, workers, len(con.recs), len(seq.recs))
			}
			if !reflect.DeepEqual(con.rep, seq.rep) {
				t.Errorf("chunk %d, %d workers: report %d accepted, %d rejected, %d listed; sequential %d, %d, %d",
					chunk, workers, con.rep.Accepted, con.rep.Rejected, len(con.rep.Errors),
					seq.rep.Accepted, seq.rep.Rejected, len(seq.rep.Errors))
			}
		}
	}
}

// The concurrent parse keeps the sequential one's bounds: MaxLines (the
// near miss: exactly MaxLines, with or without the last "\n"), MaxBytes,
// a failed read, and a cancelled context.
func TestReadNDJSONConcurrently_bounds(t *testing.T) {
	line := `{"time":"2026-12-06T07:00:00Z","system":"ehr","user":"u","action":"read"}` + "\n"
	parse := func(ctx context.Context, body string, opts IngestOptions) (*ingestParser, error) {
		p := newTestParser(ctx, opts)
		return p, p.readNDJSONConcurrently(&capReader{r: strings.NewReader(body), left: opts.MaxBytes}, 100, 2)
	}
	opts := IngestOptions{MaxBytes: DefaultIngestMaxBytes, MaxLines: 50, MaxLine: DefaultIngestMaxLine}
	ctx := context.Background()
	for _, body := range []string{strings.Repeat(line, 50), strings.Repeat(line, 50)[:50*len(line)-1]} {
		if p, err := parse(ctx, body, opts); err != nil || p.rep.Accepted != 50 {
			t.Errorf("50 lines of at most 50: %v, %d accepted", err, p.rep.Accepted)
		}
	}
	for _, body := range []string{strings.Repeat(line, 51), strings.Repeat(line, 50) + "\n", strings.Repeat(line, 50) + " "} {
		if _, err := parse(ctx, body, opts); phivault.ErrorCode(err) != phivault.ETOOLARGE || !strings.Contains(err.Error(), "50 lines") {
			t.Errorf("51 lines of at most 50: %v, want a 413 naming the lines", err)
		}
	}

	small := opts
	small.MaxLines, small.MaxBytes = DefaultIngestMaxLines, int64(10*len(line))
	if _, err := parse(ctx, strings.Repeat(line, 10), small); err != nil {
		t.Errorf("%d bytes of at most %d: %v", 10*len(line), small.MaxBytes, err)
	}
	if _, err := parse(ctx, strings.Repeat(line, 10)+"\n", small); phivault.ErrorCode(err) != phivault.ETOOLARGE || !strings.Contains(err.Error(), "bytes") {
		t.Errorf("one byte over MaxBytes: %v, want a 413 naming the bytes", err)
	}

	// Line 51 is refused before the read that fails after it.
	over := io.MultiReader(strings.NewReader(strings.Repeat(line, 51)), iotest.ErrReader(iotest.ErrTimeout))
	if err := newTestParser(ctx, opts).readNDJSONConcurrently(over, 1<<20, 2); phivault.ErrorCode(err) != phivault.ETOOLARGE {
		t.Errorf("51 lines of at most 50, then a failed read: %v, want a 413", err)
	}

	failing := newTestParser(ctx, opts)
	r := iotest.TimeoutReader(strings.NewReader(strings.Repeat(line, 10)))
	if err := failing.readNDJSONConcurrently(r, 100, 2); phivault.ErrorCode(err) != phivault.EINVALID || !errors.Is(err, iotest.ErrTimeout) {
		t.Errorf("a failed read: %v, want EINVALID wrapping the read's error", err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	many := opts
	many.MaxLines = DefaultIngestMaxLines
	if _, err := parse(cancelled, strings.Repeat(line, 3000), many); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v, want context.Canceled", err)
	}
}
