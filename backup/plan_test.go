package backup_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/phivault/phivault/backup"
)

// at parses an RFC 3339 time.
func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// snap is a snapshot named id at time s; a "*" after the id marks it
// verified.
func snap(id, s string) backup.SnapshotInfo {
	id, verified := strings.CutSuffix(id, "*")
	return backup.SnapshotInfo{ID: id, Time: at(s), Verified: verified}
}

// verdicts renders a plan as "id: reasons" for each snapshot kept and
// "id: remove" for each removed, newest first.
func verdicts(ds []backup.Decision) []string {
	var out []string
	for _, d := range ds {
		if d.Keep {
			out = append(out, fmt.Sprintf("%s: %s", d.ID, strings.Join(d.Reasons, ", ")))
		} else {
			out = append(out, d.ID+": remove")
		}
	}
	return out
}

func TestPlan(t *testing.T) {
	now := at("2027-01-10T12:00:00Z")
	tests := []struct {
		name   string
		give   []backup.SnapshotInfo
		policy backup.Policy
		want   []string
	}{
		{
			name: "DailyBucketEdges",
			// A day is a UTC day: 02:00 at +05:00 is the evening before.
			give: []backup.SnapshotInfo{
				snap("a", "2026-12-03T12:00:00Z"),
				snap("b*", "2026-12-04T00:00:00Z"),
				snap("c", "2026-12-05T10:00:00Z"),
				snap("d", "2026-12-06T02:00:00+05:00"),
				snap("e", "2026-12-05T23:59:59Z"),
			},
			policy: backup.Policy{KeepDaily: 2},
			want: []string{
				"e: daily 2026-12-05",
				"d: remove",
				"c: remove",
				"b: daily 2026-12-04, newest verified",
				"a: remove",
			},
		},
		{
			name: "WeeklyBucketEdges",
			// ISO weeks run Monday to Sunday, across the new year.
			give: []backup.SnapshotInfo{
				snap("sun49*", "2026-12-06T23:00:00Z"),
				snap("mon50", "2026-12-07T00:00:00Z"),
				snap("thu53", "2026-12-31T10:00:00Z"),
				snap("fri53", "2027-01-01T10:00:00Z"),
				snap("sun53", "2027-01-03T23:59:59Z"),
				snap("mon01", "2027-01-04T00:00:01Z"),
			},
			policy: backup.Policy{KeepWeekly: 3},
			want: []string{
				"mon01: weekly 2027-W01",
				"sun53: weekly 2026-W53",
				"fri53: remove",
				"thu53: remove",
				"mon50: weekly 2026-W50",
				"sun49: newest verified",
			},
		},
		{
			name: "MonthlyBucketEdges",
			give: []backup.SnapshotInfo{
				snap("oct", "2026-10-15T00:00:00Z"),
				snap("nov-first*", "2026-11-01T00:00:00Z"),
				snap("nov-last", "2026-11-30T23:59:59Z"),
				snap("dec-first", "2026-12-01T00:00:00Z"),
				snap("dec", "2026-12-20T00:00:00Z"),
			},
			policy: backup.Policy{KeepMonthly: 2},
			want: []string{
				"dec: monthly 2026-12",
				"dec-first: remove",
				"nov-last: monthly 2026-11",
				"nov-first: newest verified",
				"oct: remove",
			},
		},
		{
			name: "RulesAddUp",
			give: []backup.SnapshotInfo{
				snap("a*", "2026-11-02T00:00:00Z"),
				snap("b", "2026-12-01T00:00:00Z"),
				snap("c", "2026-12-08T00:00:00Z"),
				snap("d", "2026-12-09T01:00:00Z"),
				snap("e", "2026-12-09T02:00:00Z"),
			},
			policy: backup.Policy{KeepLast: 2, KeepDaily: 2, KeepMonthly: 1},
			want: []string{
				"e: last 1, daily 2026-12-09, monthly 2026-12",
				"d: last 2",
				"c: daily 2026-12-08",
				"b: remove",
				"a: newest verified",
			},
		},
		{
			name: "KeepWithinCountsFromNewest",
			// The newest is a week old; "within 48h" counts from it, not
			// from now, and the cut-off itself is out.
			give: []backup.SnapshotInfo{
				snap("a*", "2026-12-30T12:00:00Z"),
				snap("b", "2027-01-01T12:00:00Z"),
				snap("c", "2027-01-01T12:00:01Z"),
				snap("d", "2027-01-03T12:00:00Z"),
			},
			policy: backup.Policy{KeepWithin: 48 * time.Hour},
			want: []string{
				"d: within 48h0m0s",
				"c: within 48h0m0s",
				"b: remove",
				"a: newest verified",
			},
		},
		{
			name: "KeepWithinFutureSnapshot",
			// A snapshot from a clock ahead of now: the window ends at now.
			give: []backup.SnapshotInfo{
				snap("a*", "2027-01-09T11:00:00Z"),
				snap("b", "2027-01-09T13:00:00Z"),
				snap("future", "2027-01-20T00:00:00Z"),
			},
			policy: backup.Policy{KeepWithin: 24 * time.Hour},
			want: []string{
				"future: within 24h0m0s",
				"b: within 24h0m0s",
				"a: newest verified",
			},
		},
		{
			name: "LastVerifiedSurvivesKeepLastZero",
			give: []backup.SnapshotInfo{
				snap("a*", "2026-12-01T00:00:00Z"),
				snap("b*", "2026-12-02T00:00:00Z"),
				snap("c", "2026-12-03T00:00:00Z"),
			},
			policy: backup.Policy{KeepLast: 0},
			want: []string{
				"c: remove",
				"b: newest verified",
				"a: remove",
			},
		},
		{
			name: "NegativeMeansNoLimit",
			give: []backup.SnapshotInfo{
				snap("a*", "2026-12-01T00:00:00Z"),
				snap("b", "2026-12-01T05:00:00Z"),
				snap("c", "2026-12-02T00:00:00Z"),
			},
			policy: backup.Policy{KeepDaily: -1},
			want: []string{
				"c: daily 2026-12-02",
				"b: daily 2026-12-01",
				"a: newest verified",
			},
		},
		{
			name: "NothingVerifiedNothingRemoved",
			give: []backup.SnapshotInfo{
				snap("a", "2026-12-01T00:00:00Z"),
				snap("b", "2026-12-02T00:00:00Z"),
			},
			policy: backup.Policy{KeepLast: 2},
			want:   []string{"b: last 1", "a: last 2"},
		},
		{
			name: "NothingVerifiedAllowed",
			give: []backup.SnapshotInfo{
				snap("a", "2026-12-01T00:00:00Z"),
				snap("b", "2026-12-02T00:00:00Z"),
			},
			policy: backup.Policy{KeepLast: 1, AllowUnverified: true},
			want:   []string{"b: last 1", "a: remove"},
		},
		{
			name: "EqualTimesInIDOrder",
			give: []backup.SnapshotInfo{
				snap("y*", "2026-12-01T00:00:00Z"),
				snap("x", "2026-12-01T00:00:00Z"),
			},
			policy: backup.Policy{KeepLast: 1},
			want:   []string{"x: last 1", "y: newest verified"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := backup.Plan(tt.give, tt.policy, now)
			if err != nil {
				t.Fatalf("Plan = %v", err)
			}
			if diff := cmp.Diff(tt.want, verdicts(got)); diff != "" {
				t.Errorf("Plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlan_nothingVerified(t *testing.T) {
	give := []backup.SnapshotInfo{
		snap("a", "2026-12-01T00:00:00Z"),
		snap("b", "2026-12-02T00:00:00Z"),
		snap("c", "2026-12-03T00:00:00Z"),
	}
	got, err := backup.Plan(give, backup.Policy{KeepLast: 1}, at("2026-12-04T00:00:00Z"))
	if !errors.Is(err, backup.ErrNothingVerified) || got != nil {
		t.Fatalf("Plan with no verified snapshot = %v, %v; want refused with %v", verdicts(got), err, backup.ErrNothingVerified)
	}
	for _, w := range []string{"remove 2 of 3", "verify"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Plan error %q does not say %q", err, w)
		}
	}
}
