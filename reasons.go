package pgsession

import "net/http"

// Why the plugin refused a request: the name handle_errors sees in
// {http.auth.pg_session.reason}, a public contract, each with the one
// status it is answered with. docs/reference.md lists them all, and a test
// fails when one is missing there.

// reason is a refusal's name.
type reason string

const (
	reasonBadRequest                    reason = "bad_request"                      // the request could not be read: a malformed body, field or parameter
	reasonBodyTooLarge                  reason = "body_too_large"                   // the body is larger than the route takes
	reasonBusy                          reason = "busy"                             // too many password checks are waiting at once
	reasonCrossOrigin                   reason = "cross_origin"                     // a request that acts with the cookie came from another site
	reasonInvalidAdminToken             reason = "invalid_admin_token"              // the admin token is wrong
	reasonInvalidCode                   reason = "invalid_code"                     // the second-factor code or recovery code is wrong
	reasonInvalidCredentials            reason = "invalid_credentials"              // the username or password is wrong
	reasonInvalidPasskey                reason = "invalid_passkey"                  // a sign-in with a passkey did not verify
	reasonMethodNotAllowed              reason = "method_not_allowed"               // the route does not take this method
	reasonNeedsHttps                    reason = "needs_https"                      // the route works only over HTTPS
	reasonNoAdmin                       reason = "no_admin"                         // the admin API is off: no admin token is set
	reasonNoPasskeyCeremony             reason = "no_passkey_ceremony"              // a passkey answer came without the request it answers, or after it expired
	reasonNoSuchPasskey                 reason = "no_such_passkey"                  // no passkey of the user has that id
	reasonNoSuchSession                 reason = "no_such_session"                  // no session of the user has that handle
	reasonNoSuchUser                    reason = "no_such_user"                     // no user has that name
	reasonNoTotp                        reason = "no_totp"                          // the user has no authenticator app set up
	reasonNoTotpSetup                   reason = "no_totp_setup"                    // no authenticator app set-up is in progress to confirm
	reasonNotAdmin                      reason = "not_admin"                        // the route is for admins
	reasonNotAuthenticated              reason = "not_authenticated"                // the request has no session cookie
	reasonPasskeyExists                 reason = "passkey_exists"                   // that passkey is already registered
	reasonPasskeysNeedADomain           reason = "passkeys_need_a_domain"           // passkeys need the site to be reached by a domain name
	reasonPasskeysUnavailable           reason = "passkeys_unavailable"             // passkeys are off, or need secrets_key
	reasonRegistrationOff               reason = "registration_off"                 // registration is off
	reasonSecondFactorEnrolmentRequired reason = "second_factor_enrolment_required" // second_factor required, and the user has none set up yet
	reasonSecondFactorExpired           reason = "second_factor_expired"            // the sign-in waiting for a second factor expired or is unknown
	reasonSecretUnreadable              reason = "secret_unreadable"                // a stored second-factor secret does not decrypt with secrets_key
	reasonSessionExpired                reason = "session_expired"                  // the session cookie names no live session
	reasonSmuggledIdentity              reason = "smuggled_identity"                // identity headers were sent as trailers
	reasonStoreUnavailable              reason = "store_unavailable"                // PostgreSQL cannot be reached
	reasonThrottled                     reason = "throttled"                        // too many failed attempts from the account or the address
	reasonTooManyPasskeys               reason = "too_many_passkeys"                // the user has as many passkeys as allowed
	reasonTotpOff                       reason = "totp_off"                         // TOTP is not offered: no secrets_key
	reasonTotpOn                        reason = "totp_on"                          // an authenticator app is already set up
	reasonUnverifiedPasskey             reason = "unverified_passkey"               // a new passkey, or a passkey answer, could not be read or verified
	reasonUsernameLookalike             reason = "username_lookalike"               // the name looks like an existing user's
	reasonUsernameTaken                 reason = "username_taken"                   // the name is taken
	reasonWrongCode                     reason = "wrong_code"                       // the code does not confirm the authenticator app being set up
	reasonWrongPassword                 reason = "wrong_password"                   // the current password is wrong
)

// reasonStatus is the status each reason is answered with.
var reasonStatus = map[reason]int{
	reasonBadRequest:                    http.StatusBadRequest,
	reasonBodyTooLarge:                  http.StatusRequestEntityTooLarge,
	reasonBusy:                          http.StatusServiceUnavailable,
	reasonCrossOrigin:                   http.StatusForbidden,
	reasonInvalidAdminToken:             http.StatusUnauthorized,
	reasonInvalidCode:                   http.StatusUnauthorized,
	reasonInvalidCredentials:            http.StatusUnauthorized,
	reasonInvalidPasskey:                http.StatusUnauthorized,
	reasonMethodNotAllowed:              http.StatusMethodNotAllowed,
	reasonNeedsHttps:                    http.StatusBadRequest,
	reasonNoAdmin:                       http.StatusNotFound,
	reasonNoPasskeyCeremony:             http.StatusBadRequest,
	reasonNoSuchPasskey:                 http.StatusNotFound,
	reasonNoSuchSession:                 http.StatusNotFound,
	reasonNoSuchUser:                    http.StatusNotFound,
	reasonNoTotp:                        http.StatusNotFound,
	reasonNoTotpSetup:                   http.StatusConflict,
	reasonNotAdmin:                      http.StatusForbidden,
	reasonNotAuthenticated:              http.StatusUnauthorized,
	reasonPasskeyExists:                 http.StatusConflict,
	reasonPasskeysNeedADomain:           http.StatusBadRequest,
	reasonPasskeysUnavailable:           http.StatusBadRequest,
	reasonRegistrationOff:               http.StatusNotFound,
	reasonSecondFactorEnrolmentRequired: http.StatusForbidden,
	reasonSecondFactorExpired:           http.StatusUnauthorized,
	reasonSecretUnreadable:              http.StatusServiceUnavailable,
	reasonSessionExpired:                http.StatusUnauthorized,
	reasonSmuggledIdentity:              http.StatusBadRequest,
	reasonStoreUnavailable:              http.StatusServiceUnavailable,
	reasonThrottled:                     http.StatusTooManyRequests,
	reasonTooManyPasskeys:               http.StatusConflict,
	reasonTotpOff:                       http.StatusNotFound,
	reasonTotpOn:                        http.StatusConflict,
	reasonUnverifiedPasskey:             http.StatusBadRequest,
	reasonUsernameLookalike:             http.StatusConflict,
	reasonUsernameTaken:                 http.StatusConflict,
	reasonWrongCode:                     http.StatusBadRequest,
	reasonWrongPassword:                 http.StatusForbidden,
}
