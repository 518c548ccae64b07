package pgsession

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/mail"
	"github.com/pgsession/caddy-pgsession/internal/routes"
	"github.com/pgsession/caddy-pgsession/store"
)

// Metrics, served at Caddy's /metrics beside Caddy's own. Each config load
// has a registry of its own (ctx.GetMetricsRegistry()), so the collectors
// live with the connection pool, which carries over reloads: made once per
// database, registered on every load. A reload keeps the counts, and
// nothing is registered twice in one registry.

const metricsNamespace, metricsSubsystem = "caddy", "pg_session"

// gateOutcome is how the gate decided a request.
type gateOutcome int

const (
	gateAllowed gateOutcome = iota
	gateNoCookie
	gateInvalid         // a cookie that is no token: refused without a query
	gateExpired         // a token of no live session: unknown, expired or revoked
	gateCrossOrigin     // refused by cross_origin_protection
	gateStoreError      // the database did not answer
	gateForbidden       // a live session that an access rule refuses
	gateInvalidAPIToken // an API token that is no live token
	gateThrottled       // API tokens from an address past its failed logins
	gateStepUp          // a password session on a path whose rule asks for a second factor
	gateOutcomes
)

var gateOutcomeNames = [gateOutcomes]string{"allowed", "no_cookie", "invalid", "expired", "refused_cross_origin", "store_error", "forbidden",
	"invalid_api_token", "throttled", "step_up"}

// cacheResult is how a session look-up was answered.
type cacheResult int

const (
	cacheHit          cacheResult = iota // from memory, no query
	cacheMiss                            // asked the database, answered or failed
	cacheOfflineGrace                    // from memory while the database failed
	cacheResults
)

var cacheResultNames = [cacheResults]string{"hit", "miss", "offline_grace"}

// endedWhen is when a request's session ended while it was being served.
type endedWhen int

const (
	endedBefore endedWhen = iota // before its response began: answered as the next request is
	endedDuring                  // while its response ran: cut
	endedWhens
)

var endedWhenNames = [endedWhens]string{"before_response", "during_response"}

// cleanupKinds are what a cleanup round deletes, as cleanup_deleted_total's
// kind label names them.
var cleanupKinds = []string{"sessions", "login_attempts", "sign_ins", "pending_logins", "used_challenges", "audit_entries"}

// metrics are the plugin's collectors. The counters of the request path
// are made with their labels once, so counting is one atomic add.
type metrics struct {
	gate            [gateOutcomes]prometheus.Counter
	cache           [cacheResults]prometheus.Counter
	ended           [endedWhens]prometheus.Counter
	logins          *prometheus.CounterVec
	factors         *prometheus.CounterVec
	sessionsCreated prometheus.Counter
	cleanupDeleted  *prometheus.CounterVec
	activeSessions  prometheus.Gauge
	expiredSessions prometheus.Gauge
	queryDuration   *prometheus.HistogramVec
	pool            *poolCollector
	mail            mail.Metrics // the smtp sender's

	collectors []prometheus.Collector
}

func newMetrics() *metrics {
	m := &metrics{pool: newPoolCollector()}
	gate, gateCounters := labelled("gate_requests_total",
		"Requests the gate checked for a session, by outcome: allowed, no_cookie, invalid (a cookie that is no "+
			"token), expired (no live session: unknown, expired or revoked), refused_cross_origin, store_error.",
		"outcome", gateOutcomeNames[:])
	copy(m.gate[:], gateCounters)
	cache, cacheCounters := labelled("cache_lookups_total",
		"Session look-ups by how they were answered: hit (from memory, no query), miss (asked the database), "+
			"offline_grace (from memory while the database failed).",
		"result", cacheResultNames[:])
	copy(m.cache[:], cacheCounters)
	ended, endedCounters := labelled("requests_ended_total",
		"Requests the gate let through whose session ended while they were being served, by when: before_response "+
			"(answered as the session's next request is, 401 or the login page), during_response (the response was cut).",
		"when", endedWhenNames[:])
	copy(m.ended[:], endedCounters)
	m.logins, _ = labelled("logins_total",
		"Login attempts by outcome: success, failure (wrong username, password or second-factor code), "+
			"throttled (refused by the failed-login limits), second_factor_required (right password, code asked).",
		"outcome", routes.LoginOutcomes)
	m.factors = prometheus.NewCounterVec(counterOpts("sign_in_factors_total",
		"Factors checked by sign-in steps, by factor (password, totp, recovery_code, passkey) and the step's outcome."),
		[]string{"factor", "outcome"})
	m.sessionsCreated = prometheus.NewCounter(counterOpts("sessions_created_total",
		"Sessions created by logins and registrations on this server."))
	m.cleanupDeleted, _ = labelled("cleanup_deleted_total",
		"Rows the cleanup rounds run by this server deleted, by kind: sessions (expired), login_attempts, sign_ins, pending_logins, used_challenges, audit_entries.",
		"kind", cleanupKinds)
	m.activeSessions = prometheus.NewGauge(prometheus.GaugeOpts(counterOpts("active_sessions",
		"Live sessions in the database, counted every minute and after each cleanup round.")))
	m.expiredSessions = prometheus.NewGauge(prometheus.GaugeOpts(counterOpts("expired_sessions",
		"Ended sessions still in the database, for the next cleanup round to delete; counted as active_sessions is.")))
	m.queryDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "store_query_duration_seconds",
		Help: "How long the session store's statements took on their connection, by statement name " +
			"(other: migrations, transactions' begin and commit).",
		Buckets: []float64{.0002, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"statement"})
	m.collectors = []prometheus.Collector{gate, cache, ended, m.logins, m.factors, m.sessionsCreated, m.cleanupDeleted,
		m.activeSessions, m.expiredSessions, m.queryDuration, m.pool}
	m.collectors = append(m.collectors, newMailMetrics(&m.mail)...)
	return m
}

// newMailMetrics makes the smtp sender's collectors: one set per pool, as
// the others, which the senders of overlapping configs count in together.
func newMailMetrics(m *mail.Metrics) []prometheus.Collector {
	m.Sent, _ = labelled("mail_sent_total", "Mail delivered to the SMTP server, by kind (reset, verify_email, "+
		"email_changed, invitation).", "kind", mail.Kinds)
	m.Failed, _ = labelled("mail_failed_total", "Mail given up on, by kind: refused for good (5xx) or still failing "+
		"after the last retry; each is logged once.", "kind", mail.Kinds)
	m.Retries = prometheus.NewCounter(counterOpts("mail_retries_total",
		"Delivery attempts after a message's first, after a temporary refusal (4xx) or a connection that failed."))
	m.Dropped, _ = labelled("mail_dropped_total", "Mail never delivered nor given up on, by reason: queue_full, "+
		"bad_message (a line break in the recipient or subject), stopped (still queued when Caddy stopped, or a reload changed the smtp block).",
		"reason", mail.DropReasons)
	m.Queued = prometheus.NewGauge(prometheus.GaugeOpts(counterOpts("mail_queue_length",
		"Mail waiting to be sent: for a first attempt or a retry.")))
	return []prometheus.Collector{m.Sent, m.Failed, m.Retries, m.Dropped, m.Queued}
}

func counterOpts(name, help string) prometheus.CounterOpts {
	return prometheus.CounterOpts{Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: name, Help: help}
}

// labelled makes a counter with one label, and its counters for values in
// order: they show as 0 before anything is counted, and the request path
// never looks a label up.
func labelled(name, help, label string, values []string) (*prometheus.CounterVec, []prometheus.Counter) {
	vec := prometheus.NewCounterVec(counterOpts(name, help), []string{label})
	counters := make([]prometheus.Counter, len(values))
	for i, v := range values {
		counters[i] = vec.WithLabelValues(v)
	}
	return vec, counters
}

// register adds the collectors to a config's registry; there is none when
// the context was not made by Caddy's loading of a config.
func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
	}
	return nil
}

// observeQuery is the store.QueryTimer's report.
func (m *metrics) observeQuery(statement string, took time.Duration) {
	m.queryDuration.WithLabelValues(statement).Observe(took.Seconds())
}

// countSessions sets the session gauges. While the database fails they
// keep their last values, and each failed count is logged: at most one line
// per countInterval.
func (a *App) countSessions(ctx context.Context) {
	countCtx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	switch c, err := a.store.CountSessions(countCtx); {
	case err == nil:
		a.metrics.activeSessions.Set(float64(c.Active))
		a.metrics.expiredSessions.Set(float64(c.Expired))
	case ctx.Err() == nil:
		a.logger.Warn("counting sessions for the metrics", zap.String("database", a.target), zap.Error(err))
	}
}

// cleaned counts what a cleanup round deleted.
func (m *metrics) cleaned(c store.Cleanup) {
	m.cleanupDeleted.WithLabelValues("sessions").Add(float64(c.Sessions))
	m.cleanupDeleted.WithLabelValues("login_attempts").Add(float64(c.LoginAttempts))
	m.cleanupDeleted.WithLabelValues("sign_ins").Add(float64(c.SignIns))
	m.cleanupDeleted.WithLabelValues("pending_logins").Add(float64(c.PendingLogins))
	m.cleanupDeleted.WithLabelValues("used_challenges").Add(float64(c.UsedChallenges))
	m.cleanupDeleted.WithLabelValues("account_tokens").Add(float64(c.AccountTokens))
	m.cleanupDeleted.WithLabelValues("audit_entries").Add(float64(c.AuditEntries))
}

// poolCollector reads the pool's connection counts when /metrics is
// scraped: from memory, without a query, and all from one snapshot.
type poolCollector struct {
	pool                         *pgxpool.Pool // set once the pool exists, before any registration
	acquired, idle, total, limit *prometheus.Desc
}

func newPoolCollector() *poolCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, metricsSubsystem, name), help, nil, nil)
	}
	return &poolCollector{
		acquired: desc("pool_acquired_connections", "Connections of the pool in use by a query now."),
		idle:     desc("pool_idle_connections", "Connections of the pool open and idle."),
		total:    desc("pool_total_connections", "Connections of the pool open or being opened."),
		limit:    desc("pool_max_connections", "The most connections the pool may open (max_connections)."),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.acquired
	ch <- c.idle
	ch <- c.total
	ch <- c.limit
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	for desc, v := range map[*prometheus.Desc]int32{c.acquired: s.AcquiredConns(), c.idle: s.IdleConns(),
		c.total: s.TotalConns(), c.limit: s.MaxConns()} {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(v))
	}
}
