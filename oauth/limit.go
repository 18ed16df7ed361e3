package oauth

import (
	"container/list"
	"math"
	"net"
	"net/http"
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
	// DefaultLimitSources is how many sources the limiter remembers; the
	// least recently seen is forgotten first.
	DefaultLimitSources = 65536
)

// A Limiter limits requests per source address with a token bucket
// (golang.org/x/time/rate) for each. IPv6 sources are grouped by /64, the
// block a single host usually controls. It remembers at most a fixed
// number of sources and forgets the least recently seen first, so the
// table itself cannot be exhausted; a forgotten source starts again with
// a full bucket. It is safe for concurrent use.
type Limiter struct {
	// Now is the clock. Default time.Now.
	Now func() time.Time

	limit rate.Limit
	burst int
	max   int

	mu      sync.Mutex
	sources map[string]*list.Element // of *sourceLimit
	lru     list.List                // front: most recently seen
}

type sourceLimit struct {
	key string
	lim *rate.Limiter
}

// NewLimiter returns a Limiter that allows each source perSecond requests
// per second in the long run and burst at once, remembering at most
// sources sources.
func NewLimiter(perSecond float64, burst, sources int) *Limiter {
	return &Limiter{
		Now:     time.Now,
		limit:   rate.Limit(perSecond),
		burst:   burst,
		max:     max(sources, 1),
		sources: make(map[string]*list.Element),
	}
}

// Allow reports whether source may make a request now, and if not, how
// long it should wait before the next one.
func (l *Limiter) Allow(source string) (ok bool, retryAfter time.Duration) {
	key := sourceKey(source)
	now := l.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var sl *sourceLimit
	if e, found := l.sources[key]; found {
		l.lru.MoveToFront(e)
		sl = e.Value.(*sourceLimit)
	} else {
		if len(l.sources) >= l.max {
			old := l.lru.Back()
			l.lru.Remove(old)
			delete(l.sources, old.Value.(*sourceLimit).key)
		}
		sl = &sourceLimit{key: key, lim: rate.NewLimiter(l.limit, l.burst)}
		l.sources[key] = l.lru.PushFront(sl)
	}
	r := sl.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Minute
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Len returns how many sources the limiter remembers.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sources)
}

// sourceKey returns the key source is limited under: the address, or its
// /64 for IPv6.
func sourceKey(source string) string {
	ip := net.ParseIP(source)
	if ip == nil || ip.To4() != nil {
		return source
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
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
