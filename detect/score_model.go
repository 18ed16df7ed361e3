package detect

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// User-day features, in the order of a feature vector.
const (
	fEvents    = iota // accesses counted (searches and openings)
	fPatients         // distinct patients opened
	fUnrelated        // share of those without a care relationship
	fHours            // distinct hours active
	fOffHours         // share of accesses in the user's rare hours
	fDepts            // distinct departments of the patients opened
	fSearch           // share of accesses that are searches
	nFeatures
)

// dayFeatures is one past user-day.
type dayFeatures struct {
	Day int64              `json:"day"`
	X   [nFeatures]float64 `json:"x"`
}

// Robust scales are at least scaleFloor and relFloor times the median,
// so a user whose days never vary is not flagged for the smallest
// change.
var (
	scaleFloor = [nFeatures]float64{fEvents: 3, fPatients: 1.5, fUnrelated: 0.08, fHours: 1.5, fOffHours: 0.08, fDepts: 0.75, fSearch: 0.1}
	relFloor   = [nFeatures]float64{fEvents: 0.2, fPatients: 0.2, fHours: 0.1}
)

// Shares are shrunk towards the median when their day holds few
// accesses: their z-scores are multiplied by n/(n+shareShrink).
const shareShrink = 4

// Model settings.
const (
	minOwnDays     = 3    // days of history before the own model counts
	fullOwnDays    = 10   // days of history for the own model's full weight
	peerDays       = 14   // recent days of each peer the peer model reads
	minPeers       = 3    // users a peer group needs
	minPeerSamples = 10   // user-days a peer group needs
	maxZ           = 50.0 // cap of one feature's z-score
	factorZ        = 3.0  // z-score from which a feature is named as a factor
	squashC        = 4.0  // combined z-score where behaviour risk is 0.5
	priorWeight    = 0.25 // weight of the neutral prior in the behaviour risk
)

// Neutral values: what a user without history gets, and what leaves a
// rule's score unchanged.
const (
	neutralBehaviour = 0.2
	neutralGraph     = 0.25
)

// robustModel holds a median and a robust scale (1.4826 × MAD, floored)
// per feature.
type robustModel struct {
	med, scale [nFeatures]float64
	n          int // user-days fitted
}

// fitRobust fits a robustModel to samples, feature by feature, with
// robustStats.
func fitRobust(samples [][nFeatures]float64) *robustModel {
	m := &robustModel{n: len(samples)}
	if len(samples) == 0 {
		return m
	}
	buf := make([]float64, len(samples))
	for f := range nFeatures {
		for i, x := range samples {
			buf[i] = x[f]
		}
		st := robustStats(buf, 0.5)
		m.med[f] = st.med
		m.scale[f] = max(madScale*st.mad, scaleFloor[f], relFloor[f]*st.med)
	}
	return m
}

// z returns the one-sided robust z-scores of x: how far above the
// median each feature is, in scales.
func (m *robustModel) z(x [nFeatures]float64) [nFeatures]float64 {
	var z [nFeatures]float64
	for f := range nFeatures {
		v := (x[f] - m.med[f]) / m.scale[f]
		switch f {
		case fUnrelated:
			v *= x[fPatients] / (x[fPatients] + shareShrink)
		case fOffHours, fSearch:
			v *= x[fEvents] / (x[fEvents] + shareShrink)
		}
		z[f] = min(max(v, 0), maxZ)
	}
	return z
}

// combinedZ folds z-scores into one: the largest counts fully, the next
// two half and a quarter, so correlated features add little.
func combinedZ(z [nFeatures]float64) float64 {
	s := z
	slices.Sort(s[:])
	return math.Sqrt(s[nFeatures-1]*s[nFeatures-1] + 0.5*s[nFeatures-2]*s[nFeatures-2] + 0.25*s[nFeatures-3]*s[nFeatures-3])
}

// squash maps a combined z-score to 0–1.
func squash(l float64) float64 { return l * l / (l*l + squashC*squashC) }

// behaviour is a user-day scored against the user's own history and
// peer group.
type behaviour struct {
	risk   float64 // 0–1; neutralBehaviour when nothing is known
	day    int64
	today  bool
	x      [nFeatures]float64
	own    *robustModel // nil: too little history
	peer   *robustModel // nil: no usable peer group
	zo, zp [nFeatures]float64
	wo, wp float64
}

// behaviour scores u's day: the day in progress if day is the current
// one or later or not in the history, else that past day against the
// days before it. A day without counted accesses is neutral.
func (s *RiskScorer) behaviour(dir *Directory, u *scoreUser, day int64) behaviour {
	b := behaviour{risk: neutralBehaviour, day: s.day, today: true}
	hist := u.hist
	b.x = u.cur.features()
	if day < s.day {
		if i := slices.IndexFunc(u.hist, func(d dayFeatures) bool { return d.Day == day }); i >= 0 {
			b.day, b.today, b.x, hist = day, false, u.hist[i].X, u.hist[:i]
		}
	}
	if b.x[fEvents] == 0 {
		return b
	}
	if len(hist) >= minOwnDays {
		samples := make([][nFeatures]float64, len(hist))
		for i, d := range hist {
			samples[i] = d.X
		}
		b.own = fitRobust(samples)
		b.zo = b.own.z(b.x)
		b.wo = min(1, float64(len(hist))/fullOwnDays)
	}
	if b.peer = s.peerModel(dir, u); b.peer != nil {
		b.zp = b.peer.z(b.x)
		b.wp = 0.5 * (1 - 0.5*b.wo)
	}
	num, den := priorWeight*neutralBehaviour, priorWeight
	if b.own != nil {
		num += b.wo * squash(combinedZ(b.zo))
		den += b.wo
	}
	if b.peer != nil {
		num += b.wp * squash(combinedZ(b.zp))
		den += b.wp
	}
	b.risk = num / den
	return b
}

// peerModel returns the model of u's peer group (role + department),
// else of u's role, else of every user, whichever first has enough
// users and days; or nil.
func (s *RiskScorer) peerModel(dir *Directory, u *scoreUser) *robustModel {
	roles, dept := peerGroup(dir, u.id, u.roles, u.dept)
	group, role := groupKey(roles, dept), leastRole(roles)
	keys := [3]string{"g:" + group, "r:" + role, "*"}
	for _, key := range keys {
		if m, ok := s.peerCache[key]; ok {
			if m != nil {
				return m
			}
			continue
		}
		var samples [][nFeatures]float64
		members := 0
		for _, v := range s.users {
			if len(v.hist) == 0 || !inPeerModel(key, v, group, role) {
				continue
			}
			members++
			for _, d := range v.hist[max(0, len(v.hist)-peerDays):] {
				samples = append(samples, d.X)
			}
		}
		var m *robustModel
		if members >= minPeers && len(samples) >= minPeerSamples {
			m = fitRobust(samples)
		}
		s.peerCache[key] = m
		if m != nil {
			return m
		}
	}
	return nil
}

// inPeerModel reports whether v belongs to the peer model key of a user in
// group and role.
func inPeerModel(key string, v *scoreUser, group, role string) bool {
	switch key[0] {
	case 'g':
		return v.group == group
	case 'r':
		return v.role == role
	}
	return true
}

// factor is one contribution to a score, in points, and its words.
type factor struct {
	points float64
	text   string
}

// factors returns the features of b worth naming, with their share of
// points, the behaviour's contribution to a score.
func (b *behaviour) factors(points float64) []factor {
	if b.own == nil && b.peer == nil {
		return nil
	}
	var out []factor
	var total float64
	type pick struct {
		w    float64
		z    float64
		peer bool
	}
	var picks [nFeatures]pick
	for f := range nFeatures {
		wo, wp := b.wo*b.zo[f], b.wp*b.zp[f]
		if b.own != nil && wo >= wp && b.zo[f] >= factorZ {
			picks[f] = pick{w: wo, z: b.zo[f]}
		} else if b.peer != nil && b.zp[f] >= factorZ {
			picks[f] = pick{w: wp, z: b.zp[f], peer: true}
		}
		total += picks[f].w * picks[f].w
	}
	if total == 0 {
		return nil
	}
	when := "today"
	if !b.today {
		when = "on " + time.Unix(b.day*86400, 0).UTC().Format(time.DateOnly)
	}
	for f, p := range picks {
		if p.w == 0 {
			continue
		}
		m := b.own
		if p.peer {
			m = b.peer
		}
		out = append(out, factor{
			points: points * p.w * p.w / total,
			text:   featureText(f, b.x[f], m.med[f], p.peer, when),
		})
	}
	return out
}

// featureText says in words that feature f was x where the median is
// med.
func featureText(f int, x, med float64, peer bool, when string) string {
	whose := "their usual"
	usually := "usually"
	if peer {
		whose, usually = "their peers' usual", "peers usually"
	}
	count := func(verb, noun string) string {
		if med < 0.5 {
			return fmt.Sprintf("%s %.0f %s %s, %s none", verb, x, noun, when, usually)
		}
		return fmt.Sprintf("%s %.0f %s %s, %s× %s %.0f", verb, x, noun, when, ratio(x/med), whose, med)
	}
	pct := func(v float64) int { return int(math.Round(100 * v)) }
	switch f {
	case fEvents:
		return count("made", "accesses")
	case fPatients:
		return count("opened", "patients")
	case fUnrelated:
		return fmt.Sprintf("%d%% of the patients opened %s have no care relationship (%s %d%%)", pct(x), when, usually, pct(med))
	case fHours:
		return fmt.Sprintf("active in %.0f different hours %s (%s %.0f)", x, when, usually, med)
	case fOffHours:
		return fmt.Sprintf("%d%% of accesses %s fell in hours they are rarely active (%s %d%%)", pct(x), when, usually, pct(med))
	case fDepts:
		return fmt.Sprintf("opened patients of %.0f departments %s (%s %.0f)", x, when, usually, med)
	case fSearch:
		return fmt.Sprintf("%d%% of accesses %s were searches (%s %d%%)", pct(x), when, usually, pct(med))
	}
	return ""
}

// ratio formats r as "6" or "2.5".
func ratio(r float64) string {
	if r >= 10 || math.Abs(r-math.Round(r)) < 0.05 {
		return fmt.Sprintf("%.0f", r)
	}
	return fmt.Sprintf("%.1f", r)
}
