package pgsession

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/pgsession/caddy-pgsession/internal/engine"
	"github.com/pgsession/caddy-pgsession/internal/routes"
	"github.com/pgsession/caddy-pgsession/store"
)

// BenchmarkGateFromMemory is the work the gate adds to a request whose
// session is in memory, in process, without the network: what must stay
// small next to the tens of microseconds a request costs end to end.
func BenchmarkGateFromMemory(b *testing.B) {
	h, token, conn := gateFromMemory()
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodGet, "/assets/site.css", nil)
		r.Header.Set("Cookie", "session="+token)
		repl := caddy.NewReplacer()
		r = r.WithContext(context.WithValue(conn, caddy.ReplacerCtxKey, repl))
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, r, benchNext); err != nil || w.Code != http.StatusOK {
			b.Fatalf("status %d, %v", w.Code, err)
		}
	}
}

// gateFromMemory is a gate whose one session, of token, is in memory that
// is up to date, without a database, and the context of a connection for
// its requests.
func gateFromMemory() (h *Handler, token string, conn context.Context) {
	now := time.Now()
	token = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ"
	app := &App{cache: engine.NewCache(100, time.Minute, time.Hour), inflight: engine.NewFlights(privateResponse),
		health: &engine.Health{Logger: zap.NewNop()}, metrics: newMetrics()}
	app.cache.Confirmed(now)
	s := engine.FromLive(engine.KeyOf(token), store.LiveSession{UserID: "user-1", Username: "u",
		ExpiresAt: now.Add(time.Hour), LastSeenAt: now, CheckedAt: now}, now)
	app.cache.Put(s, app.cache.Epoch())
	app.sessions = engine.Sessions{Cache: app.cache, Health: app.health, Hit: app.metrics.cache[cacheHit],
		Length: store.TokenLength, Valid: store.ValidToken}
	app.shared = &routes.Shared{Look: app.sessions.Look, Memory: appMemory{app}}
	h = &Handler{app: app, CookieName: "session", RenewalInterval: caddy.Duration(time.Hour), logger: zap.NewNop(),
		guardSiteWrites: true, privateResponses: true,
		LoginPath: "/login", LogoutPath: "/logout", APIPath: "/api/auth", AccountPath: "/account"}
	cfg, err := h.routesConfig()
	if err != nil {
		panic(err)
	}
	h.site = routes.New(cfg, app.shared, h.logger)
	// Every request comes on one connection, as a browser's and the
	// end-to-end benchmark's do.
	return h, token, engine.WithLastKey(context.Background(), nil)
}

// BenchmarkRequestAlone is the same request straight to the next handler,
// to subtract.
func BenchmarkRequestAlone(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodGet, "/assets/site.css", nil)
		r.Header.Set("Cookie", "session=abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ")
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
		w := httptest.NewRecorder()
		if err := benchNext.ServeHTTP(w, r); err != nil {
			b.Fatal(err)
		}
	}
}

// benchNext answers as a static file would.
var benchNext = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/css")
	w.WriteHeader(http.StatusOK)
	return nil
})

// BenchmarkBasicAuthFromCache is Caddy's own basic_auth on the same request,
// with its hash cache warm as after a first request: the peer the gate is
// measured against end to end (make bench-gate), here without the network.
func BenchmarkBasicAuthFromCache(b *testing.B) {
	hash, err := bcrypt.GenerateFromPassword([]byte("correct horse battery"), bcrypt.MinCost)
	if err != nil {
		b.Fatal(err)
	}
	config := fmt.Sprintf(`{"providers": {"http_basic": {"hash_cache": {},
		"accounts": [{"username": "bench", "password": %q}]}}}`, hash)
	var auth caddyauth.Authentication
	if err := json.Unmarshal([]byte(config), &auth); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := auth.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	header := "Basic " + base64.StdEncoding.EncodeToString([]byte("bench:correct horse battery"))
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodGet, "/assets/site.css", nil)
		r.Header.Set("Authorization", header)
		repl := caddy.NewReplacer()
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
		w := httptest.NewRecorder()
		if err := auth.ServeHTTP(w, r, benchNext); err != nil || w.Code != http.StatusOK {
			b.Fatalf("status %d, %v", w.Code, err)
		}
	}
}
