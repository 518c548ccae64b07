package pgsession

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
)

// An outage is a server going or gone, or no answer at all; an error the
// server answered with (a constraint, a cancelled query) is not one.
func TestIsOutage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err    error
		outage bool
	}{
		{&pgconn.PgError{Code: "08006"}, true},  // connection_failure
		{&pgconn.PgError{Code: "08P01"}, true},  // protocol_violation, class 08 as well
		{&pgconn.PgError{Code: "57P01"}, true},  // admin_shutdown
		{&pgconn.PgError{Code: "57P02"}, true},  // crash_shutdown
		{&pgconn.PgError{Code: "57P03"}, true},  // cannot_connect_now
		{&pgconn.PgError{Code: "57P04"}, true},  // database_dropped
		{&pgconn.PgError{Code: "57P05"}, true},  // idle_session_timeout
		{&pgconn.PgError{Code: "57014"}, false}, // query_canceled: the server answered
		{&pgconn.PgError{Code: "23505"}, false}, // unique_violation
		{&pgconn.PgError{Code: "42P01"}, false}, // undefined_table
		{fmt.Errorf("checking the session: %w", &pgconn.PgError{Code: "57P01"}), true},
		{errors.New("dial tcp 127.0.0.1:5432: connect: connection refused"), true},
		{context.DeadlineExceeded, true},
	} {
		assert.Equal(t, tc.outage, isOutage(tc.err), "%v", tc.err)
	}
}
