package oauth

import (
	"container/list"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/phivault/phivault"
)

// Defaults of NewLimiter as the Server uses it.
const (
	// DefaultLimitRate is how many sign-in and token requests per second
	// one source may make in the long run: enough for a clinic behind one
	// NAT address, far too few to guess passwords or fill memory.
	DefaultLimitRate = 5
	// DefaultLimitBurst is how many such requests one source may make at
	// once.
	DefaultLimitBurst = 50
	// DefaultLimitSources is how many buckets (sources and IPv6 blocks) the
	// limiter remembers; the least recently used is forgotten first.
	DefaultLimitSources = 65536
)

// How much of a source's rate and burst the IPv6 blocks above a /64 get,
// shared by every /64 in them. One party usually holds a whole block (a
// home or small site a /56, a site a /48), so counting its /64s apart
// would multiply its rate by 256 or 65,536.
const (
	// LimitShare56 is how many sources' worth of requests all /64s of one
	// IPv6 /56 may make together.
	LimitShare56 = 2
	// LimitShare48 is how many sources' worth of requests all /64s of one
	// IPv6 /48 may make together.
	LimitShare48 = 4
)

// A Limiter limits requests per source address with token buckets
// (golang.org/x/time/rate). An IPv4 source has a bucket of its own. An
// IPv6 source is counted in three: its /64 (the block a single host
// usually controls) has a source's bucket, and all /64s of its /56 and of
// its /48 share buckets of LimitShare56 and LimitShare48 times that, so
// a /48 full of addresses gets no more than four addresses would. A
// request passes only if every bucket it counts in has a token, and a
// refused request takes none.
//
// The limiter remembers at most a fixed number of buckets and forgets the
// least recently used first, so the table itself cannot be exhausted; a
// forgotten bucket starts again full. Buckets are looked up from the
// widest block down and a refused request creates none below the block
// that refused it, so one /48 adds new buckets no faster than its own
// bucket allows. It is safe for concurrent use.
type Limiter struct {
	// Now is the clock. Default time.Now.
	Now func() time.Time

	limit rate.Limit
	burst int
	max   int

	mu      sync.Mutex
	buckets map[string]*list.Element // of *bucket
	lru     list.List                // front: most recently used
}

type bucket struct {
	key string
	lim *rate.Limiter
}

// NewLimiter returns a Limiter that allows each source perSecond requests
// per second in the long run and burst at once, remembering at most
// sources buckets.
func NewLimiter(perSecond float64, burst, sources int) *Limiter {
	return &Limiter{
		Now:     time.Now,
		limit:   rate.Limit(perSecond),
		burst:   burst,
		max:     max(sources, 1),
		buckets: make(map[string]*list.Element),
	}
}

// Allow reports whether source may make a request now, and if not, how
// long it should wait before the next one.
func (l *Limiter) Allow(source string) (ok bool, retryAfter time.Duration) {
	now := l.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var taken []*rate.Reservation
	for _, k := range limitKeys(source) {
		r := l.bucketLocked(k).ReserveN(now, 1)
		if !r.OK() {
			cancelAll(taken, now)
			return false, time.Minute
		}
		if d := r.DelayFrom(now); d > 0 {
			r.CancelAt(now)
			cancelAll(taken, now)
			return false, d
		}
		taken = append(taken, r)
	}
	return true, 0
}

// cancelAll gives back the tokens of rs, taken at now.
func cancelAll(rs []*rate.Reservation, now time.Time) {
	for _, r := range rs {
		r.CancelAt(now)
	}
}

// bucketLocked returns the bucket of k, making it (and forgetting the
// least recently used one if the table is full) if there is none.
func (l *Limiter) bucketLocked(k limitKey) *rate.Limiter {
	if e, found := l.buckets[k.key]; found {
		l.lru.MoveToFront(e)
		return e.Value.(*bucket).lim
	}
	if len(l.buckets) >= l.max {
		old := l.lru.Back()
		l.lru.Remove(old)
		delete(l.buckets, old.Value.(*bucket).key)
	}
	b := &bucket{key: k.key, lim: rate.NewLimiter(l.limit*rate.Limit(k.share), l.burst*k.share)}
	l.buckets[k.key] = l.lru.PushFront(b)
	return b.lim
}

// Len returns how many buckets the limiter remembers.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// limitKey names a bucket and how many sources' worth of requests it
// holds.
type limitKey struct {
	key   string
	share int
}

// limitKeys returns the buckets a request from source counts in, widest
// first: an IPv4 address (or anything that is not an IP address) alone;
// an IPv6 address's /48, /56 and /64.
func limitKeys(source string) []limitKey {
	ip, err := netip.ParseAddr(source)
	if err != nil {
		return []limitKey{{source, 1}}
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return []limitKey{{ip.String(), 1}}
	}
	return []limitKey{
		{netip.PrefixFrom(ip, 48).Masked().String(), LimitShare48},
		{netip.PrefixFrom(ip, 56).Masked().String(), LimitShare56},
		{netip.PrefixFrom(ip, 64).Masked().String(), 1},
	}
}

// Limit returns h limited per source address (phivault.RequestSource) by
// l: a source over its limit gets 429 Too Many Requests with Retry-After
// and an OAuth error JSON body (error "slow_down"), and h is not called.
func (l *Limiter) Limit(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok, wait := l.Allow(phivault.RequestSource(r.Context(), r.RemoteAddr))
		if !ok {
			secs := int(math.Ceil(wait.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
			writeError(w, errf("slow_down", "Too many sign-in or token requests from this address. Retry after "+strconv.Itoa(max(secs, 1))+" seconds."))
			return
		}
		h.ServeHTTP(w, r)
	})
}
