// Package store keeps caddy-pgsession's users and sessions in PostgreSQL.
//
// It knows nothing of HTTP or Caddy: the plugin, the command line and the
// tests all use the same operations on a pgx pool.
//
// # Names
//
// A user is named by a UserID (a UUID) or by their username; a session by
// its token (the cookie's value, which only the browser keeps), by its
// SessionID (the token's SHA-256, which the database keeps), or by its Handle
// (a UUID shown to users and admins, which reveals nothing of the token).
// The types keep them from being mixed up.
//
// # Not found
//
// Every method says what it does when what it names does not exist, and
// they follow these rules:
//   - Looking up a session (GetSession, GetSessionByID) returns a nil
//     *Session and a nil error for a token or id that is malformed, unknown
//     or expired, because that is the common case on the request path, not
//     a failure; any error means the database could not answer.
//   - Looking up or changing a user returns ErrUserNotFound.
//   - Deleting a group, or changing memberships of one, returns a
//     *GroupNotFoundError, which is ErrGroupNotFound, naming the group.
//   - Stepping up a session (StepUpSession) returns ErrSessionNotFound
//     when the user has no live session by that id, since its caller acts
//     on a session it just read.
//   - Ending sessions reports what it ended (a bool or a count): ending one
//     that does not exist is not an error.
//   - Revoking one API token returns ErrTokenNotFound, since its caller
//     names a token it was shown (RevokeAllAPITokens counts, as above).
//   - An identity is named by its provider and subject, never its email:
//     finding a user by one nobody linked (UserByIdentity) or unlinking
//     one the user does not have returns ErrIdentityNotFound, which tells
//     the caller to ask for an invitation (ErrInvitationNotFound when
//     there is none) or to create the user. Taking a sign-in's flow
//     returns ErrFlowNotFound for every flow it cannot take (unknown,
//     expired, taken, of another provider or another browser), since the
//     browser is told the same in each case: start again.
//   - Listing what a user has (Identities, IdentityInvitations) returns
//     none for an unknown user, as ListAPITokens does.
package store
