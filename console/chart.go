package console

import (
	"strconv"
	"time"
)

// barChart is a small bar chart drawn as SVG by the "barchart" template:
// one bar per slot, stacked by series, with its numbers in a table for
// screen readers and for reading exact values.
type barChart struct {
	Title  string // the chart's accessible name
	Slot   string // what a slot is, for the table's header: "Day" if ""
	Series []chartSeries
	Slots  []chartSlot
	Width  int
	Height int
	Max    int // the largest stack, the top of the scale
}

// chartSeries is one stacked series: its name and its colour class.
type chartSeries struct{ Name, Class string }

// chartSlot is one bar: its label, its values by series, and the
// rectangles the template draws.
type chartSlot struct {
	Label  string
	Values []int
	Total  int
	Mark   bool // drawn highlighted (e.g. the days of an alert)
	Rects  []chartRect
	X, W   int
}

type chartRect struct {
	Y, H  int
	Class string
	Title string
}

// Chart geometry, in SVG user units.
const (
	chartWidth  = 640
	chartHeight = 160
	chartLabels = 20 // room below the bars for the slot labels
)

// layout computes the rectangles of c.
func (c *barChart) layout() *barChart {
	c.Width, c.Height = chartWidth, chartHeight+chartLabels
	c.Max = 0
	for i := range c.Slots {
		t := 0
		for _, v := range c.Slots[i].Values {
			t += v
		}
		c.Slots[i].Total = t
		c.Max = max(c.Max, t)
	}
	if len(c.Slots) == 0 {
		return c
	}
	step := chartWidth / len(c.Slots)
	for i := range c.Slots {
		s := &c.Slots[i]
		s.X, s.W = i*step+step/8, max(step*3/4, 1)
		y := chartHeight
		for j, v := range s.Values {
			if v == 0 || c.Max == 0 {
				continue
			}
			h := max(v*(chartHeight-10)/c.Max, 1)
			y -= h
			s.Rects = append(s.Rects, chartRect{Y: y, H: h, Class: c.Series[j].Class, Title: s.Label + ": " + strconv.Itoa(v) + " " + c.Series[j].Name})
		}
	}
	return c
}

// dayLabels returns the labels of the n days ending with today (UTC).
func dayLabels(now time.Time, n int) ([]string, time.Time) {
	first := now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -(n - 1))
	out := make([]string, n)
	for i := range out {
		out[i] = first.AddDate(0, 0, i).Format("Jan 2")
	}
	return out, first
}
