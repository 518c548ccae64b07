package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The audit trail of admin actions (migrations/0020_audit.sql): written by
// the router after each admin route and by the command line after each
// change, read by the admin API, the admin page and `caddy pg-session audit`.

// Actors that are no user, as AuditEntry.Actor names them.
const (
	ActorAdminToken    = "admin token"
	ActorCommandLine   = "command line"
	ActorAdminEndpoint = "caddy admin endpoint"
)

// Bounds of an AuditLog page: a page without a limit is DefaultAuditLimit
// entries long, and none is longer than MaxAuditLimit.
const (
	DefaultAuditLimit = 50
	MaxAuditLimit     = 1000
)

// maxAuditText bounds each text of an entry, in bytes: what a request put
// in a path or a handler in a detail is cut, so no entry can be made huge.
const maxAuditText = 1024

// AuditEntry is one admin action. Its JSON is how the admin API and
// `caddy pg-session audit --json` show it, the same in both.
type AuditEntry struct {
	ID int64     `db:"id" json:"id"`
	At time.Time `db:"at" json:"at"` // set by the database when recorded
	// ActorID is the admin user who acted, "" for the admin token, the
	// command line and Caddy's admin endpoint.
	ActorID UserID `db:"actor_id" json:"actor_id,omitempty"`
	// Actor is the admin's username at the time, or ActorAdminToken,
	// ActorCommandLine or ActorAdminEndpoint.
	Actor  string `db:"actor" json:"actor"`
	Action string `db:"action" json:"action"` // "user.delete", "denied", or "METHOD /pattern" for a route without a name
	Target string `db:"target" json:"target"` // "alice", "editors", "alice → editors"; "" when none
	// Detail says more of what changed ("is_admin=true", "password"); never
	// a password, a token or a link.
	Detail string `db:"detail" json:"detail"`
	Remote string `db:"remote" json:"remote"`           // the client's address; "" from the command line
	Status int    `db:"status" json:"status,omitempty"` // the HTTP status answered; 0 from the command line
}

// AuditQuery picks entries of the audit trail, newest first: at most Limit
// (DefaultAuditLimit when 0, MaxAuditLimit at most), with an id below
// Before when it is not 0 (the next page starts below the last id of the
// one before), and, for each of Actor, Target and Action that is not "",
// only the entries that have exactly it.
type AuditQuery struct {
	Limit                 int
	Before                int64
	Actor, Target, Action string
}

func auditQueries(schema string, q *queries) {
	r := strings.NewReplacer("{audit}", pgx.Identifier{schema, "audit_log"}.Sanitize())
	q.recordAudit = r.Replace(`INSERT INTO {audit} (actor_id, actor, action, target, detail, remote, status)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`)
	// Each filter is off when its argument is empty, so one statement
	// serves every query and pgx caches it; paging by id (keyset) reads
	// only the page whatever its depth.
	q.auditLog = r.Replace(`SELECT id, at, coalesce(actor_id::text, '') AS actor_id, actor, action, target, detail,
			remote, coalesce(status, 0) AS status
		FROM {audit}
		WHERE ($1 = 0 OR id < $1) AND ($2 = '' OR actor = $2) AND ($3 = '' OR target = $3) AND ($4 = '' OR action = $4)
		ORDER BY id DESC LIMIT $5`)
	q.cleanupAudit = r.Replace(`DELETE FROM {audit} WHERE id IN (
			SELECT id FROM {audit} WHERE at <= now() - make_interval(secs => $2) ORDER BY at LIMIT $1)`)
}

// RecordAudit adds e to the audit trail; its ID and At are the database's.
// Texts are made valid UTF-8 and cut to a bound, and an ActorID that is no
// uuid is left out rather than refused: the action already happened, and
// its record matters more than the id.
func (s *Store) RecordAudit(ctx context.Context, e AuditEntry) error {
	var actorID *string
	if validUUID(string(e.ActorID)) {
		id := string(e.ActorID)
		actorID = &id
	}
	var status *int
	if e.Status != 0 {
		status = &e.Status
	}
	_, err := s.pool.Exec(ctx, s.q.recordAudit, actorID, trimUTF8(e.Actor, maxAuditText), trimUTF8(e.Action, maxAuditText),
		trimUTF8(e.Target, maxAuditText), trimUTF8(e.Detail, maxAuditText), trimUTF8(e.Remote, 64), status)
	if err != nil {
		return fmt.Errorf("recording an admin action: %w", err)
	}
	return nil
}

// AuditLog returns the entries of the audit trail q picks, newest first.
func (s *Store) AuditLog(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	limit = min(limit, MaxAuditLimit)
	return queryAll[AuditEntry](ctx, s, "reading the audit trail", s.q.auditLog,
		max(q.Before, 0), q.Actor, q.Target, q.Action, limit)
}

// CleanupAudit deletes the entries older than olderThan, in batches, and
// returns how many it removed; olderThan 0 or less deletes nothing, as
// keeping the trail forever is the way to turn the retention off.
func (s *Store) CleanupAudit(ctx context.Context, olderThan time.Duration) (int64, error) {
	if olderThan <= 0 {
		return 0, nil
	}
	return s.deleteInBatches(ctx, s.q.cleanupAudit, "deleting old audit entries", olderThan.Seconds())
}
