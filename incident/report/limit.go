package report

import (
	"sync"
	"time"
)

// Defaults of a Limiter.
const (
	DefaultRate       = 5 // reports an account may submit per DefaultRateWindow
	DefaultRateWindow = time.Hour
	DefaultRateKeys   = 10000 // accounts remembered at once
)

// Limiter bounds how often each account may submit: at most N in any
// Window. It remembers at most Keys accounts; when full (after dropping
// those with nothing left in their window) it refuses new ones, so its
// memory stays bounded. It keeps account ids in memory only, for at most
// Window. It is safe for concurrent use.
type Limiter struct {
	N      int           // zero means DefaultRate
	Window time.Duration // zero means DefaultRateWindow
	Keys   int           // zero means DefaultRateKeys
	Now    func() time.Time

	mu   sync.Mutex
	seen map[string][]time.Time
}

// Allow records an attempt of key and reports whether it is within the
// limit; if not, it returns how long until the next one would be.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	n, window, keys := l.N, l.Window, l.Keys
	if n <= 0 {
		n = DefaultRate
	}
	if window <= 0 {
		window = DefaultRateWindow
	}
	if keys <= 0 {
		keys = DefaultRateKeys
	}
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string][]time.Time{}
	}
	times := recent(l.seen[key], now, window)
	if len(times) == 0 && len(l.seen) >= keys {
		for k, ts := range l.seen {
			if len(recent(ts, now, window)) == 0 {
				delete(l.seen, k)
			}
		}
		if len(l.seen) >= keys {
			return false, window
		}
	}
	if len(times) >= n {
		l.seen[key] = times
		return false, times[0].Add(window).Sub(now)
	}
	l.seen[key] = append(times, now)
	return true, 0
}

// recent returns the times of ts within window before now.
func recent(ts []time.Time, now time.Time, window time.Duration) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(now.Add(-window)) {
		i++
	}
	return ts[i:]
}
