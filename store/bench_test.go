package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/pgsession/caddy-pgsession/store"
)

// The benchmarks run in parallel against the harness server, as a busy
// Caddy would call the store.

func BenchmarkGetSession(b *testing.B) {
	s := newStore(b, store.Options{})
	alice := newUser(b, s, "alice")
	tokens := make([]string, 1000)
	for i := range tokens {
		tokens[i] = login(b, s, alice)
	}
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			sess, err := s.GetSession(ctx, tokens[i%len(tokens)])
			if err != nil || sess == nil {
				b.Fatalf("GetSession: %v, %v", sess, err)
			}
			i++
		}
	})
}

// BenchmarkCheckSession is the gate's lookup on a miss: the same row as
// GetSession, read for what the gate needs.
func BenchmarkCheckSession(b *testing.B) {
	benchmarkCheckSession(b)
}

// BenchmarkCheckSessionWithGroups is the same lookup for a user in three
// groups, whose names come with the row.
func BenchmarkCheckSessionWithGroups(b *testing.B) {
	benchmarkCheckSession(b, "dev", "ops", "staff")
}

func benchmarkCheckSession(b *testing.B, groups ...string) {
	s := newStore(b, store.Options{})
	alice := newUser(b, s, "alice")
	ctx := context.Background()
	for _, g := range groups {
		if _, err := s.CreateGroup(ctx, g); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.AddToGroups(ctx, alice.ID, groups...); err != nil {
		b.Fatal(err)
	}
	ids := make([]store.SessionID, 1000)
	for i := range ids {
		ids[i] = store.HashToken(login(b, s, alice))
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l, found, err := s.CheckSession(ctx, ids[i%len(ids)])
			if err != nil || !found || len(l.Groups) != len(groups) {
				b.Fatalf("CheckSession: %v, %v, %v", found, l.Groups, err)
			}
			i++
		}
	})
}

func BenchmarkCreateSession(b *testing.B) {
	s := newStore(b, store.Options{})
	alice := newUser(b, s, "alice")
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := s.CreateSession(ctx, store.SessionParams{User: *alice, Lifetime: time.Hour, UserAgent: "bench"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDeleteSession(b *testing.B) {
	s := newStore(b, store.Options{})
	alice := newUser(b, s, "alice")
	tokens := make(chan string, b.N)
	for range b.N {
		tokens <- login(b, s, alice)
	}
	close(tokens)
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.DeleteSession(ctx, <-tokens); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkVerifyPassword shows an unknown user costs what a wrong password does.
func BenchmarkVerifyPassword(b *testing.B) {
	s := newStore(b, store.Options{})
	newUser(b, s, "alice")
	ctx := context.Background()
	for _, bc := range []struct{ name, user string }{{"wrong_password", "alice"}, {"unknown_user", "nobody"}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				s.VerifyPassword(ctx, bc.user, "not the password")
			}
		})
	}
}
