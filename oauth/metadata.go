package oauth

import "net/http"

// smartConfiguration is the SMART App Launch 2.x discovery document.
type smartConfiguration struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	TokenEndpointAuthMethods          []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgValues []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	GrantTypes                        []string `json:"grant_types_supported"`
	Scopes                            []string `json:"scopes_supported"`
	ResponseTypes                     []string `json:"response_types_supported"`
	CodeChallengeMethods              []string `json:"code_challenge_methods_supported"`
	Capabilities                      []string `json:"capabilities"`
}

// serveMetadata answers GET /.well-known/smart-configuration.
func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	iss := s.issuer(r)
	writeJSON(w, http.StatusOK, &smartConfiguration{
		Issuer:                            iss,
		AuthorizationEndpoint:             iss + "/oauth/authorize",
		TokenEndpoint:                     iss + "/oauth/token",
		RevocationEndpoint:                iss + "/oauth/revoke",
		TokenEndpointAuthMethods:          []string{"private_key_jwt"},
		TokenEndpointAuthSigningAlgValues: []string{"RS384", "ES384"},
		GrantTypes:                        []string{"authorization_code", "refresh_token", "client_credentials"},
		Scopes: []string{
			"launch/patient", "offline_access", "online_access",
			"patient/*.rs", "patient/*.cruds", "user/*.rs", "user/*.cruds", "system/*.rs", "system/*.cruds",
		},
		ResponseTypes:        []string{"code"},
		CodeChallengeMethods: []string{"S256"},
		// No sso-openid-connect: this server issues no id_token.
		Capabilities: []string{
			"launch-standalone", "client-public", "client-confidential-asymmetric",
			"permission-v2", "permission-v1", "permission-patient", "permission-user",
			"context-standalone-patient",
		},
	})
}
