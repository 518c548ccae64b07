package store

import "github.com/jackc/pgx/v5/pgxpool"

// Pool lets the package's tests reach the database behind the store's
// back, to set up and check rows, without widening the store's API.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// StatementNames lists the name of every statement a store runs, in the
// order queries declares them, for the tests to check what labels a metric.
func StatementNames() []string {
	var names []string
	for _, name := range namedStatements(newQueries("pgsession")) {
		names = append(names, name)
	}
	return names
}
