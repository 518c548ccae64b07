package store

import "github.com/jackc/pgx/v5/pgxpool"

// Pool lets the package's tests reach the database behind the store's
// back, to set up and check rows, without widening the store's API.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }
