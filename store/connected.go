package store

import (
	"context"
	"fmt"
)

// ConnectedTo names the server a connection of the pool reaches now, as
// host:port/database: with a multi-host URL, the host that answered (after a
// failover, the new primary), not the first one listed. A connection from
// before an outage may be dead without knowing it yet, so it must answer a
// ping first; a few dead ones are dropped on the way.
func (s *Store) ConnectedTo(ctx context.Context) (string, error) {
	var err error
	for range 4 {
		conn, acquireErr := s.pool.Acquire(ctx)
		if acquireErr != nil {
			return "", fmt.Errorf("naming the connected server: %w", acquireErr)
		}
		if err = conn.Ping(ctx); err == nil {
			name := conn.Conn().PgConn().Conn().RemoteAddr().String() + "/" + conn.Conn().Config().Database
			conn.Release()
			return name, nil
		}
		// A connection that failed its ping is closed, and the pool drops it on release.
		conn.Release()
	}
	return "", fmt.Errorf("naming the connected server: %w", err)
}
