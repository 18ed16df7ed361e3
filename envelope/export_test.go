package envelope

import "time"

// AppendADForTest exposes the additional-data encoding to the known-answer
// tests.
func AppendADForTest(b []byte, typ, id string, version int64, lastUpdated time.Time, compartment string) []byte {
	return appendAD(b, typ, id, version, lastUpdated, compartment)
}

// CachedKeysForTest returns how many keys the Sealer's cache holds.
func CachedKeysForTest(s *Sealer) int { return s.cache.len() }
