package phivault

import "strings"

// BearerToken returns the token of an "Authorization: Bearer <token>"
// header value (RFC 6750 §2.1; the scheme is case-insensitive). ok is false
// if the value uses another scheme, or its token is empty or holds white
// space. Pass r.Header.Get("Authorization").
func BearerToken(authorization string) (token string, ok bool) {
	scheme, token, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}
