package pgtest

import (
	"context"
	"testing"
)

// A standby follows its primary, refuses writes, and after the primary
// crashed and the standby was promoted, has what the primary had and takes
// writes.
func TestStandbyTakesOverWhenPromoted(t *testing.T) {
	t.Parallel()
	primary := NewServer(t)
	dbURL := primary.NewDatabase(t)
	standby := primary.NewStandby(t)
	if standby.Port() == primary.Port() {
		t.Fatalf("the standby listens on the primary's port %d", primary.Port())
	}
	conn := connect(t, dbURL)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `CREATE TABLE notes (body text); INSERT INTO notes VALUES ('before the crash')`); err != nil {
		t.Fatal(err)
	}
	standby.WaitCaughtUp(t, primary)

	onStandby := standby.URLOf(t, dbURL)
	var body string
	if err := queryRow(ctx, onStandby, `SELECT body FROM notes`, &body); err != nil || body != "before the crash" {
		t.Fatalf("the standby has %q, %v", body, err)
	}
	if _, err := connect(t, onStandby).Exec(ctx, `INSERT INTO notes VALUES ('too early')`); err == nil {
		t.Fatal("a standby took a write before its promotion")
	}

	primary.StopImmediately(t)
	standby.Promote(t)
	if _, err := connect(t, onStandby).Exec(ctx, `INSERT INTO notes VALUES ('after the promotion')`); err != nil {
		t.Fatalf("the promoted standby refused a write: %v", err)
	}
	var n int
	if err := queryRow(ctx, onStandby, `SELECT count(*) FROM notes`, &n); err != nil || n != 2 {
		t.Fatalf("%d notes on the new primary, %v", n, err)
	}
}
