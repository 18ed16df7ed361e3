package federation

import (
	"context"
	"fmt"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/phivault/phivault"
	"golang.org/x/oauth2"
)

// account returns the account linked to subject ("issuer sub"), linking
// one on first login if the provider allows it. It returns a nil account
// and a reason when there is none, and an error only when a store or the
// UserInfo endpoint fails.
func (h *Handler) account(ctx context.Context, p *remote, subject, sub string, c *idClaims, op *oidc.Provider, token *oauth2.Token) (*phivault.Account, string, error) {
	a, err := h.o.Accounts.AccountByFederatedSubject(ctx, subject)
	if err == nil {
		return a, "", nil
	} else if phivault.ErrorCode(err) != phivault.ENOTFOUND {
		return nil, "", fmt.Errorf("account by subject: %w", err)
	}
	if p.LinkClaim == LinkNone {
		return nil, "unknown subject", nil
	}
	value, verified := linkValue(p.LinkClaim, c)
	if (value == "" || !verified) && op.UserInfoEndpoint() != "" {
		// The claims may be served by UserInfo only.
		info, err := op.UserInfo(ctx, oauth2.StaticTokenSource(token))
		if err != nil {
			return nil, "", fmt.Errorf("userinfo: %w", err)
		}
		if info.Subject != sub {
			return nil, "userinfo subject differs from the id token's", nil
		}
		var uc idClaims
		if err := info.Claims(&uc); err != nil {
			return nil, "userinfo claims unreadable", nil
		}
		value, verified = linkValue(p.LinkClaim, &uc)
	}
	if value == "" {
		return nil, "unknown subject; no " + p.LinkClaim + " claim to link by", nil
	}
	if !verified {
		return nil, "unknown subject; email not verified, not linking", nil
	}
	return h.link(ctx, subject, value)
}

// linkValue returns the claim to link by and whether email_verified is
// true. Both link claims require a verified email: a provider that lets
// people choose their preferred_username or email unverified must not
// take over accounts here.
func linkValue(claim string, c *idClaims) (string, bool) {
	verified := c.EmailVerified != nil && *c.EmailVerified
	switch claim {
	case LinkEmail:
		return c.Email, verified
	case LinkPreferredUsername:
		return c.PreferredUsername, verified
	}
	return "", false
}

// link sets FederatedSubject on the account named username, if it has
// none yet.
func (h *Handler) link(ctx context.Context, subject, username string) (*phivault.Account, string, error) {
	for attempt := 0; attempt < 3; attempt++ {
		a, err := h.o.Accounts.AccountByUsername(ctx, username)
		if phivault.ErrorCode(err) == phivault.ENOTFOUND {
			return nil, "unknown subject; no account to link", nil
		} else if err != nil {
			return nil, "", fmt.Errorf("account by username: %w", err)
		}
		if a.FederatedSubject != "" {
			return nil, "unknown subject; account already linked to another subject", nil
		}
		if a.Status != phivault.AccountActive {
			return nil, "unknown subject; account to link is not active", nil
		}
		a.FederatedSubject = subject
		a.Version++
		err = h.o.Accounts.UpdateAccount(ctx, a)
		if err == nil {
			h.o.Logger.Info("federated subject linked", "account", a.ID)
			return a, "", nil
		}
		if phivault.ErrorCode(err) != phivault.ECONFLICT {
			return nil, "", fmt.Errorf("link account: %w", err)
		}
	}
	return nil, "", fmt.Errorf("link account: too many concurrent updates")
}
