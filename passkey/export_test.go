package passkey

// UsedChallenges returns how many login challenges h remembers as used.
func UsedChallenges(h *Handler) int { return h.used.len() }
