package console

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var pdfPage = regexp.MustCompile(`/Type /Page\b[^s]`)

// TestWriteAccessPDF checks that the access report's PDF holds a page per
// screenful of rows, and one page when there are none.
func TestWriteAccessPDF(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	rows := func(n int) []auditRow {
		out := make([]auditRow, n)
		for i := range out {
			out[i] = auditRow{Index: strconv.Itoa(i), When: "2026-12-06 11:00:00 UTC", Actor: strings.Repeat("a", 80),
				Roles: []string{"physician"}, Action: "R", Subtype: "read", Purposes: []string{"TREAT"}, Outcome: "ok"}
		}
		return out
	}
	for _, tt := range []struct {
		rows, minPages, maxPages int
	}{{0, 1, 1}, {3, 1, 1}, {200, 4, 10}} {
		var buf bytes.Buffer
		if err := writeAccessPDF(&buf, "p-1", accessFilter{From: "2026-01-01"}, rows(tt.rows), now); err != nil {
			t.Fatal(err)
		}
		pages := len(pdfPage.FindAll(buf.Bytes(), -1))
		if !bytes.HasPrefix(buf.Bytes(), []byte("%PDF-")) || pages < tt.minPages || pages > tt.maxPages {
			t.Errorf("writeAccessPDF(%d rows) = %d pages, want %d to %d", tt.rows, pages, tt.minPages, tt.maxPages)
		}
	}
}
