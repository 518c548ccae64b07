package routes

import "net/http"

// Why the plugin refused a request: the name handle_errors sees in
// {http.auth.pg_session.reason}, a public contract, each with the one
// status it is answered with. docs/reference.md lists them all, and a test
// fails when one is missing there.

// Reason is a refusal's name.
type Reason string

const (
	ReasonAdminScopeNeedsAdmin          Reason = "admin_scope_needs_admin"          // an API token with admin rights was asked by a user who is no admin
	ReasonAdminPageNeedsSession         Reason = "admin_page_needs_session"         // the admin page's forms take an admin's signed-in session, not the admin token or an API token
	ReasonBadRequest                    Reason = "bad_request"                      // the request could not be read: a malformed body, field or parameter
	ReasonBodyTooLarge                  Reason = "body_too_large"                   // the body is larger than the route takes
	ReasonBusy                          Reason = "busy"                             // too many password checks are waiting at once
	ReasonCrossOrigin                   Reason = "cross_origin"                     // a request that acts with the cookie came from another site
	ReasonEmailNotVerified              Reason = "email_not_verified"               // verify_email on, and the user has not opened the link mailed to their address
	ReasonEmailTaken                    Reason = "email_taken"                      // another user has that email address
	ReasonForbidden                     Reason = "forbidden"                        // a rule of the site refuses the signed-in user this path
	ReasonGroupExists                   Reason = "group_exists"                     // a group has that name
	ReasonInvalidAdminToken             Reason = "invalid_admin_token"              // the admin token is wrong
	ReasonInvalidAPIToken               Reason = "invalid_api_token"                // the API token is malformed, unknown, expired or revoked
	ReasonInvalidCode                   Reason = "invalid_code"                     // the second-factor code or recovery code is wrong
	ReasonInvalidCredentials            Reason = "invalid_credentials"              // the username or password is wrong
	ReasonInvalidPasskey                Reason = "invalid_passkey"                  // a sign-in with a passkey did not verify
	ReasonLastSignInMethod              Reason = "last_sign_in_method"              // removing it would leave the user no way to sign in
	ReasonLinkExpired                   Reason = "link_expired"                     // a mailed link is past its time, or a password change or a newer link ended it
	ReasonMailOff                       Reason = "mail_off"                         // the site sends no mail: no smtp global option
	ReasonMethodNotAllowed              Reason = "method_not_allowed"               // the route does not take this method
	ReasonNeedsHttps                    Reason = "needs_https"                      // the route works only over HTTPS
	ReasonNoAdmin                       Reason = "no_admin"                         // the admin API is off: no admin token is set
	ReasonNoPasskeyCeremony             Reason = "no_passkey_ceremony"              // a passkey answer came without the request it answers, or after it expired
	ReasonNoSuchPasskey                 Reason = "no_such_passkey"                  // no passkey of the user has that id
	ReasonNoSuchProvider                Reason = "no_such_provider"                 // no identity provider has that name
	ReasonNoSuchGroup                   Reason = "no_such_group"                    // no group has that name
	ReasonNoSuchLink                    Reason = "no_such_link"                     // a mailed link is unknown, used already, or replaced by a newer one
	ReasonNoSuchSession                 Reason = "no_such_session"                  // no session of the user has that handle
	ReasonNoSuchToken                   Reason = "no_such_token"                    // no API token of the user has that id
	ReasonNoSuchUser                    Reason = "no_such_user"                     // no user has that name
	ReasonNoTotp                        Reason = "no_totp"                          // the user has no authenticator app set up
	ReasonNoTotpSetup                   Reason = "no_totp_setup"                    // no authenticator app set-up is in progress to confirm
	ReasonNotAdmin                      Reason = "not_admin"                        // the route is for admins
	ReasonNotAuthenticated              Reason = "not_authenticated"                // the request has no session cookie
	ReasonNotWithAPIToken               Reason = "not_with_api_token"               // the route manages credentials, which an API token may not do
	ReasonPasskeyExists                 Reason = "passkey_exists"                   // that passkey is already registered
	ReasonPasskeysNeedADomain           Reason = "passkeys_need_a_domain"           // passkeys need the site to be reached by a domain name
	ReasonPasskeysUnavailable           Reason = "passkeys_unavailable"             // passkeys are off, or need secrets_key
	ReasonPasswordResetOff              Reason = "password_reset_off"               // password reset by mail is off: no smtp global option
	ReasonRegistrationOff               Reason = "registration_off"                 // registration is off
	ReasonResetLinkExpired              Reason = "reset_link_expired"               // the reset link's time is up, or the password changed since it was sent
	ReasonResetLinkInvalid              Reason = "reset_link_invalid"               // the reset link was used, replaced by a newer one, or is no link at all
	ReasonSecondFactorEnrolmentRequired Reason = "second_factor_enrolment_required" // second_factor required, and the user has none set up yet
	ReasonSecondFactorExpired           Reason = "second_factor_expired"            // the sign-in waiting for a second factor expired or is unknown
	ReasonSecondFactorRequired          Reason = "second_factor_required"           // the path needs a session signed in, or stepped up, with a second factor
	ReasonSecretUnreadable              Reason = "secret_unreadable"                // a stored second-factor secret does not decrypt with secrets_key
	ReasonSessionExpired                Reason = "session_expired"                  // the session cookie names no live session
	ReasonSignInMisconfigured           Reason = "sign_in_misconfigured"            // single sign-on cannot work for this address: the cookie would never reach it
	ReasonSmuggledIdentity              Reason = "smuggled_identity"                // identity headers were sent as trailers
	ReasonStoreUnavailable              Reason = "store_unavailable"                // PostgreSQL cannot be reached
	ReasonThrottled                     Reason = "throttled"                        // too many failed attempts from the account or the address
	ReasonTokenNameTaken                Reason = "token_name_taken"                 // the user already has an API token of that name
	ReasonTooManyLinks                  Reason = "too_many_links"                   // too many links were mailed to the user lately
	ReasonTooManyPasskeys               Reason = "too_many_passkeys"                // the user has as many passkeys as allowed
	ReasonTotpOff                       Reason = "totp_off"                         // TOTP is not offered: no secrets_key
	ReasonTotpOn                        Reason = "totp_on"                          // an authenticator app is already set up
	ReasonUnverifiedPasskey             Reason = "unverified_passkey"               // a new passkey, or a passkey answer, could not be read or verified
	ReasonUsernameLookalike             Reason = "username_lookalike"               // the name looks like an existing user's
	ReasonUsernameTaken                 Reason = "username_taken"                   // the name is taken
	ReasonWrongCode                     Reason = "wrong_code"                       // the code does not confirm the authenticator app being set up
	ReasonWrongPassword                 Reason = "wrong_password"                   // the current password is wrong

	// Invitations to create an account (invitation.go).
	ReasonInvitationExpired Reason = "invitation_expired" // the invitation's link is past its expiry
	ReasonInvitationUsed    Reason = "invitation_used"    // the invitation's link was used already
	ReasonNoSuchInvitation  Reason = "no_such_invitation" // no invitation has that token or id
	ReasonPasswordsDiffer   Reason = "passwords_differ"   // the password and its confirmation differ
)

// ReasonStatus is the status each reason is answered with.
var ReasonStatus = map[Reason]int{
	ReasonAdminScopeNeedsAdmin:          http.StatusForbidden,
	ReasonAdminPageNeedsSession:         http.StatusForbidden,
	ReasonBadRequest:                    http.StatusBadRequest,
	ReasonBodyTooLarge:                  http.StatusRequestEntityTooLarge,
	ReasonBusy:                          http.StatusServiceUnavailable,
	ReasonCrossOrigin:                   http.StatusForbidden,
	ReasonEmailNotVerified:              http.StatusForbidden,
	ReasonEmailTaken:                    http.StatusConflict,
	ReasonForbidden:                     http.StatusForbidden,
	ReasonGroupExists:                   http.StatusConflict,
	ReasonInvalidAdminToken:             http.StatusUnauthorized,
	ReasonInvalidAPIToken:               http.StatusUnauthorized,
	ReasonInvalidCode:                   http.StatusUnauthorized,
	ReasonInvalidCredentials:            http.StatusUnauthorized,
	ReasonInvalidPasskey:                http.StatusUnauthorized,
	ReasonLastSignInMethod:              http.StatusConflict,
	ReasonLinkExpired:                   http.StatusBadRequest,
	ReasonMailOff:                       http.StatusNotFound,
	ReasonMethodNotAllowed:              http.StatusMethodNotAllowed,
	ReasonNeedsHttps:                    http.StatusBadRequest,
	ReasonNoAdmin:                       http.StatusNotFound,
	ReasonNoPasskeyCeremony:             http.StatusBadRequest,
	ReasonNoSuchProvider:                http.StatusNotFound,
	ReasonNoSuchPasskey:                 http.StatusNotFound,
	ReasonNoSuchSession:                 http.StatusNotFound,
	ReasonNoSuchToken:                   http.StatusNotFound,
	ReasonNoSuchUser:                    http.StatusNotFound,
	ReasonNoSuchGroup:                   http.StatusNotFound,
	ReasonNoSuchLink:                    http.StatusNotFound,
	ReasonNoTotp:                        http.StatusNotFound,
	ReasonNoTotpSetup:                   http.StatusConflict,
	ReasonNotAdmin:                      http.StatusForbidden,
	ReasonNotAuthenticated:              http.StatusUnauthorized,
	ReasonNotWithAPIToken:               http.StatusForbidden,
	ReasonPasskeyExists:                 http.StatusConflict,
	ReasonPasskeysNeedADomain:           http.StatusBadRequest,
	ReasonPasskeysUnavailable:           http.StatusBadRequest,
	ReasonPasswordResetOff:              http.StatusNotFound,
	ReasonRegistrationOff:               http.StatusNotFound,
	ReasonResetLinkExpired:              http.StatusGone,
	ReasonResetLinkInvalid:              http.StatusNotFound,
	ReasonSecondFactorEnrolmentRequired: http.StatusForbidden,
	ReasonSecondFactorExpired:           http.StatusUnauthorized,
	ReasonSecondFactorRequired:          http.StatusUnauthorized,
	ReasonSecretUnreadable:              http.StatusServiceUnavailable,
	ReasonSessionExpired:                http.StatusUnauthorized,
	ReasonSignInMisconfigured:           http.StatusMisdirectedRequest,
	ReasonSmuggledIdentity:              http.StatusBadRequest,
	ReasonStoreUnavailable:              http.StatusServiceUnavailable,
	ReasonThrottled:                     http.StatusTooManyRequests,
	ReasonTokenNameTaken:                http.StatusConflict,
	ReasonTooManyLinks:                  http.StatusTooManyRequests,
	ReasonTooManyPasskeys:               http.StatusConflict,
	ReasonTotpOff:                       http.StatusNotFound,
	ReasonTotpOn:                        http.StatusConflict,
	ReasonUnverifiedPasskey:             http.StatusBadRequest,
	ReasonUsernameLookalike:             http.StatusConflict,
	ReasonUsernameTaken:                 http.StatusConflict,
	ReasonWrongCode:                     http.StatusBadRequest,
	ReasonWrongPassword:                 http.StatusForbidden,

	ReasonInvitationExpired: http.StatusGone,
	ReasonInvitationUsed:    http.StatusGone,
	ReasonNoSuchInvitation:  http.StatusNotFound,
	ReasonPasswordsDiffer:   http.StatusBadRequest,
}
