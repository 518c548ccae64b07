package pgtest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The configuration a throwaway PgBouncer starts with: transaction pooling
// in front of one backend, as the tests of a pooler need.

// writeConfig writes pgbouncer.ini for the given port, readable only by the account pgbouncer runs
// as, since it may hold the backend's password.
func (b *PgBouncer) writeConfig(backend *pgx.ConnConfig, port int, runAs *account) error {
	server := fmt.Sprintf("host=%s port=%d dbname=%s user=%s",
		iniValue(backend.Host), backend.Port, backend.Database, backend.User)
	if backend.Password != "" {
		server += " password=" + iniValue(backend.Password)
	}
	conf := fmt.Sprintf(`; Written by pgtest: pgbouncer in transaction pooling mode, as in front of many app servers.
[databases]
%s = %s

[pgbouncer]
listen_addr = %s
listen_port = %d
; Only TCP: a socket in a shared folder could clash with another pgbouncer or server.
unix_socket_dir =
logfile = %s

pool_mode = transaction
; Few server connections, so a handful of clients already take turns on them.
default_pool_size = %d
max_client_conn = 200
; After a failed server login new clients are refused for this long; 1 s instead of 15 s lets tests
; that stop and start the backend see the recovery quickly.
server_login_retry = 1

; No passwords: any client user is let in and logs in to the server as the user above, and any
; user may use the admin console.
auth_type = any
; What JDBC and older drivers send; most deployments ignore it, and pgx does not send it.
ignore_startup_parameters = extra_float_digits
server_tls_sslmode = %s
`, backend.Database, server, host, port, b.logPath, PgBouncerPoolSize, serverSSLMode(backend))

	path := filepath.Join(b.dir, "pgbouncer.ini")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("pgtest: writing pgbouncer.ini: %w", err)
	}
	if runAs != nil {
		if err := os.Chown(path, runAs.uid, runAs.gid); err != nil {
			return fmt.Errorf("pgtest: giving pgbouncer.ini to the %s OS user: %w", runAs.name, err)
		}
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(backend.User),
		Host:     net.JoinHostPort(host, strconv.Itoa(port)),
		Path:     "/" + backend.Database,
		RawQuery: "sslmode=disable",
	}
	b.url = u.String()
	u.Path, u.RawQuery = "/pgbouncer", "sslmode=disable&default_query_exec_mode=simple_protocol"
	b.adminURL = u.String()
	return nil
}

// iniValue quotes a connection string value for pgbouncer.ini, which doubles single quotes inside
// quoted values like libpq does.
func iniValue(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// serverSSLMode keeps the backend URL's choice about TLS, so an external test server that
// requires TLS still works through pgbouncer and the throwaway cluster, which has none, is not asked.
func serverSSLMode(backend *pgx.ConnConfig) string {
	switch {
	case backend.TLSConfig == nil:
		return "disable"
	case len(backend.Fallbacks) > 0 && backend.Fallbacks[len(backend.Fallbacks)-1].TLSConfig == nil:
		return "prefer"
	default:
		return "require"
	}
}
