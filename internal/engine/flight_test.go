package engine

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type testCtxKey struct{}

// A request's context behaves as context.WithCancel's would, although it
// makes the cancellable context only when something waits on it.
func TestRequestContextEndsLikeACancelledContext(t *testing.T) {
	parent := context.WithValue(context.Background(), testCtxKey{}, "value")

	t.Run("ended by its session", func(t *testing.T) {
		c := &requestContext{parent: parent}
		assert.NoError(t, c.Err())
		assert.Equal(t, "value", c.Value(testCtxKey{}))
		before, stop := context.WithCancel(c)
		defer stop()
		c.end()
		requireClosed(t, c.Done())
		requireClosed(t, before.Done())
		assert.ErrorIs(t, c.Err(), context.Canceled)
		assert.ErrorIs(t, context.Cause(c), context.Canceled, "Cause agrees with Err")
		after, stop := context.WithCancel(c)
		defer stop()
		requireClosed(t, after.Done())
		assert.Equal(t, "value", after.Value(testCtxKey{}), "values still reach through")
	})

	t.Run("done before anything waited", func(t *testing.T) {
		c := &requestContext{parent: parent}
		c.finish()
		assert.ErrorIs(t, c.Err(), context.Canceled)
		requireClosed(t, c.Done())
	})

	t.Run("ended by its parent", func(t *testing.T) {
		p, cancel := context.WithCancelCause(parent)
		c := &requestContext{parent: p}
		done := c.Done()
		gone := errors.New("client went away")
		cancel(gone)
		requireClosed(t, done)
		assert.ErrorIs(t, c.Err(), context.Canceled)
		assert.ErrorIs(t, context.Cause(c), gone)
	})

	t.Run("a parent ended before anything waited", func(t *testing.T) {
		p, cancel := context.WithCancel(parent)
		c := &requestContext{parent: p}
		cancel()
		assert.ErrorIs(t, c.Err(), context.Canceled)
		requireClosed(t, c.Done())
	})
}

// Contexts derived from a request's context register with it as with any
// cancellable context, rather than each starting a goroutine to watch it.
func TestRequestContextDerivedWithoutGoroutines(t *testing.T) {
	c := &requestContext{parent: context.Background()}
	before := runtime.NumGoroutine()
	stops := make([]context.CancelFunc, 0, 100)
	for range 100 {
		_, stop := context.WithCancel(c)
		stops = append(stops, stop)
		context.AfterFunc(c, func() {})
	}
	assert.Less(t, runtime.NumGoroutine()-before, 10)
	c.end()
	for _, stop := range stops {
		stop()
	}
}

// The watcher ends a request's context while its request waits on it and
// finishes: run with -race.
func TestRequestContextEndedWhileInUse(t *testing.T) {
	for range 200 {
		c := &requestContext{parent: context.Background()}
		var wg sync.WaitGroup
		wg.Go(func() { <-c.Done() })
		wg.Go(func() { _ = c.Err(); _ = c.Value(testCtxKey{}) })
		wg.Go(c.end)
		wg.Go(c.finish)
		wg.Wait()
		require.ErrorIs(t, c.Err(), context.Canceled)
	}
}

func requireClosed(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	default:
		t.Fatal("Done is not closed")
	}
}
