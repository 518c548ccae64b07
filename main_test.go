package pgsession

import (
	"testing"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
)

// TestMain stops the throwaway PostgreSQL of this package's tests when they end.
func TestMain(m *testing.M) { pgtest.Main(m) }
