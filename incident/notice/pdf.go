package notice

import (
	"fmt"
	"io"
	"time"

	"codeberg.org/go-pdf/fpdf"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
)

// WritePDF writes letters to w as one PDF on US Letter paper: each letter
// starts on a new page, its reference in the footer of each of its pages,
// the addressee's block where a window envelope shows it. The text is set
// in the Go font, embedded, so names in any Latin, Greek or Cyrillic
// script print as written. created dates the document.
func WritePDF(w io.Writer, letters []*Letter, created time.Time) error {
	pdf := fpdf.New("P", "mm", "Letter", "")
	pdf.SetCreationDate(created)
	pdf.SetModificationDate(created)
	pdf.SetTitle("Breach notification letters", true)
	pdf.SetCreator("phivault", true)
	pdf.AddUTF8FontFromBytes("go", "", goregular.TTF)
	pdf.AddUTF8FontFromBytes("go", "B", gobold.TTF)
	pdf.SetMargins(25, 20, 25)
	pdf.SetAutoPageBreak(true, 22)
	var ref string
	pdf.SetFooterFunc(func() {
		pdf.SetY(-15)
		pdf.SetFont("go", "", 8)
		pdf.CellFormat(0, 5, fmt.Sprintf("Reference %s", ref), "", 0, "C", false, 0, "")
	})
	for _, l := range letters {
		ref = l.Reference
		pdf.AddPage()
		writeLetter(pdf, l)
		if pdf.Err() {
			break
		}
	}
	if len(letters) == 0 {
		pdf.AddPage()
		pdf.SetFont("go", "", 11)
		pdf.MultiCell(0, 5.5, "No letters: nobody in this incident has a postal address on record to write to.", "", "L", false)
	}
	if err := pdf.Output(w); err != nil {
		return fmt.Errorf("notice: write the PDF: %w", err)
	}
	return nil
}

func writeLetter(pdf *fpdf.Fpdf, l *Letter) {
	const lh = 4.8 // line height, mm
	line := func(s string) { pdf.MultiCell(0, lh, s, "", "L", false) }
	pdf.SetFont("go", "B", 11)
	line(l.From.Name)
	pdf.SetFont("go", "", 10)
	for _, s := range l.From.Address.Block() {
		line(s)
	}
	// A #10 window envelope shows the address block about 2 inches from
	// the top of a tri-folded letter.
	pdf.SetY(50)
	pdf.SetFont("go", "", 10)
	for _, s := range append([]string{l.To.Name}, l.To.Address.Block()...) {
		line(s)
	}
	pdf.SetY(max(pdf.GetY()+6, 80))
	pdf.SetFont("go", "", 10)
	line(day(l.Date) + "    Reference: " + l.Reference)
	pdf.Ln(3)
	pdf.SetFont("go", "B", 11)
	line(l.Subject)
	pdf.Ln(2)
	pdf.SetFont("go", "", 10)
	line(l.Greeting)
	pdf.Ln(1)
	line(l.Opening)
	for _, s := range l.Sections {
		pdf.Ln(2)
		pdf.SetFont("go", "B", 10)
		line(s.Heading)
		pdf.SetFont("go", "", 10)
		for _, p := range s.Paragraphs {
			line(p)
			pdf.Ln(0.8)
		}
	}
	pdf.Ln(3)
	line(l.Closing)
	pdf.Ln(6)
	line(l.Signature)
	line(l.From.Name)
}
