// Package engine is what the gate knows of sessions in memory: the sessions
// it has checked, whether memory may be trusted to answer alone, the
// lookups under way and the requests in flight that end with their session.
//
// It speaks net/http and the store, never Caddy's HTTP modules nor the
// plugin's root package, so that it can be tested, and reasoned about, on
// its own; what the root decides (metrics, how a response is marked
// private) comes in as values and functions the root passes.
package engine
