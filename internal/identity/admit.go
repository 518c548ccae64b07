package identity

import (
	"slices"
	"strings"
)

// Identity is who a provider vouches for at the end of a sign-in.
type Identity struct {
	// Provider is the name of the provider that vouches.
	Provider string
	// Subject is the provider's lasting id of the user: an OpenID token's
	// sub, GitHub's numeric user id (never the login, which its user can
	// change and another then take). An identity is linked to a user by
	// (Provider, Subject), never by email alone.
	Subject string
	// Email is the user's email at the provider (GitHub's primary one), and
	// EmailVerified whether the provider says it verified it; an email that
	// is not verified decides nothing: neither an allow list nor a link.
	Email         string
	EmailVerified bool
	// UsernameHint is a name to suggest for a new user: the token's
	// preferred_username or the email's local part, GitHub's login.
	UsernameHint string
	// Name is the user's display name, if the provider gives one.
	Name string
	// Groups are the groups claim's values (OpenID Connect with
	// groups_claim), lowercased, a leading / taken off (Keycloak's full
	// paths): the routes keep those that name a group of the plugin's.
	Groups []string
	// Organizations are the entries of allow_organizations (GitHub) the
	// user is an active member of.
	Organizations []string
	// MFA says that the provider's amr or acr claims show a second factor
	// and that trust_provider_mfa lets them count as one.
	MFA bool
}

// Admits says whether the provider's allow lists let id in, and why, in
// words for the log. Each list set must be passed: an email list
// (allow_emails or allow_domains, either of which admits a verified email)
// and allow_organizations. Without any list, none is admitted: only an
// identity already linked to a user may sign in. With one, it is meant to
// be asked at every sign-in, a linked identity's too, so that a member who
// left the organisation no longer signs in.
func (p *Provider) Admits(id Identity) (bool, string) {
	c := p.cfg
	switch {
	case id.Provider != c.Name:
		return false, "the identity is " + id.Provider + "'s, not " + c.Name + "'s"
	case !c.HasAllowList():
		return false, "no allow list: only an identity linked to a user may sign in"
	}
	var why []string
	if c.UsesEmail() {
		if id.Email == "" || !id.EmailVerified {
			return false, "the provider does not say the email is verified"
		}
		email := strings.ToLower(id.Email)
		domain := email[strings.LastIndexByte(email, '@')+1:]
		switch {
		case slices.ContainsFunc(c.AllowEmails, equalFold(email)):
			why = append(why, "the email is in allow_emails")
		case strings.Contains(email, "@") && slices.ContainsFunc(c.AllowDomains, equalFold(domain)):
			why = append(why, "the email's domain is in allow_domains")
		default:
			return false, "neither the email nor its domain " + domain + " is in allow_emails or allow_domains"
		}
	}
	if len(c.AllowOrganizations) > 0 {
		var member []string
		for _, entry := range id.Organizations {
			if slices.ContainsFunc(c.AllowOrganizations, equalFold(entry)) {
				member = append(member, entry)
			}
		}
		if len(member) == 0 {
			return false, "not a member of any of allow_organizations"
		}
		why = append(why, "a member of "+strings.Join(member, ", "))
	}
	return true, strings.Join(why, "; ")
}

func equalFold(s string) func(string) bool {
	return func(t string) bool { return strings.EqualFold(s, t) }
}

// emailRule refuses an identity whose email an allow list would decide on
// while the provider does not vouch for it.
func (p *Provider) emailRule(id Identity) error {
	if p.cfg.UsesEmail() && !id.EmailVerified {
		if id.Email == "" {
			return p.fail(ErrEmailNotVerified, "the provider gives no email")
		}
		return p.fail(ErrEmailNotVerified, "the provider does not say the email is verified")
	}
	return nil
}

// factorKinds sorts the authentication methods of RFC 8176 by the kind of
// factor each is: something known, had or been.
var factorKinds = map[string]string{
	"pwd": "knows", "pin": "knows", "kba": "knows",
	"otp": "has", "hwk": "has", "swk": "has", "sc": "has", "sms": "has", "tel": "has",
	"fpt": "is", "face": "is", "iris": "is", "retina": "is", "vbm": "is",
}

// multiFactorACRs are acr values that name multi-factor authentication in
// themselves: OpenID's PAPE policy and the phishing-resistant levels.
var multiFactorACRs = []string{
	"http://schemas.openid.net/pape/policies/2007/06/multi-factor",
	"http://schemas.openid.net/pape/policies/2007/06/multi-factor-physical",
	"phr", "phrh",
}

// showsSecondFactor reads amr and acr: "mfa" among the methods, methods of
// two kinds of factor (a password and a one-time code), or an acr that
// means multi-factor. Other acr values are each provider's own (Keycloak's
// numbered levels) and count for nothing.
func showsSecondFactor(amr []string, acr string) bool {
	kinds := map[string]bool{}
	for _, m := range amr {
		if m == "mfa" {
			return true
		}
		if kind, ok := factorKinds[m]; ok {
			kinds[kind] = true
		}
	}
	return len(kinds) >= 2 || slices.Contains(multiFactorACRs, acr)
}

// groupNames reads a groups claim: a list of strings, or one string.
func groupNames(claim any) []string {
	var values []string
	switch v := claim.(type) {
	case string:
		values = []string{v}
	case []any:
		for _, g := range v {
			if s, ok := g.(string); ok {
				values = append(values, s)
			}
		}
	}
	var groups []string
	for _, g := range values {
		g = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(g), "/"))
		if g != "" && !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	return groups
}

// localPart is the part of an email before its @.
func localPart(email string) string {
	local, _, _ := strings.Cut(email, "@")
	return local
}
