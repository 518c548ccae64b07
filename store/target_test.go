package store

import (
	"testing"

	"github.com/jackc/pgx/v5"
)

// Target names every host of a multi-host URL once, in order, and never
// the password.
func TestTargetNamesEveryHost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, want string }{
		{"postgres://u:secret@db1:5432/app?sslmode=disable", "db1:5432/app"},
		{"postgres://u:secret@db1:5432,db2:5433/app?sslmode=disable&target_session_attrs=read-write", "db1:5432,db2:5433/app"},
		// sslmode=prefer makes pgx try each host with TLS and then without.
		{"postgres://u:secret@db1,db2/app?sslmode=prefer", "db1:5432,db2:5432/app"},
		{"host=db1,db2 port=5432,6432 user=u password=secret dbname=app sslmode=disable", "db1:5432,db2:6432/app"},
	} {
		cfg, err := pgx.ParseConfig(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := Target(cfg); got != tc.want {
			t.Errorf("Target(%s) = %q, want %q", tc.want, got, tc.want)
		}
	}
}
