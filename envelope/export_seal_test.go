package envelope

// CachedIndexKeyForTest returns the cached index key's bytes themselves
// (not a copy), so a test can see them zeroed; nil if none is cached.
func CachedIndexKeyForTest(s *Sealer) []byte {
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	if el := s.cache.byID[IndexKeyID]; el != nil {
		if ik := el.Value.(*keyEntry).index; ik != nil {
			ik.mu.RLock()
			defer ik.mu.RUnlock()
			return ik.key
		}
	}
	return nil
}
