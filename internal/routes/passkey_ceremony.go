package routes

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"golang.org/x/time/rate"

	"github.com/pgsession/caddy-pgsession/internal/sealed"
	"github.com/pgsession/caddy-pgsession/store"
)

// A passkey ceremony's state between its begin and its finish travels in
// the ceremony cookie, sealed with AES-256-GCM: the browser can neither
// read nor change it, and beginning a sign-in, which needs no cookie,
// writes nothing to PostgreSQL. Every server sharing the database has the
// same key, so the finish may reach another server than the begin. The
// finish records the challenge (store.UseChallenge), so a ceremony is
// finished once, on whichever server.

// Ceremony kinds; each seals with its own additional data, so one kind's
// cookie does not open as the other's.
const (
	CeremonyRegister = "register"
	CeremonyLogin    = "login"
	// CeremonyStepUp is a passkey check of the signed-in user's, for a
	// step-up: its cookie names the user, and opens for no sign-in.
	CeremonyStepUp = "step-up"
)

// How often one client address may begin passkey sign-ins: a burst of
// BeginBurst, then one every beginEvery. A person begins a few a minute;
// the limit keeps a loop from one address from costing more than that.
const (
	BeginBurst = 30
	beginEvery = time.Second
	// beginAddresses bounds the addresses the limiter remembers; past it,
	// new addresses share one bucket until idle ones are forgotten.
	beginAddresses = 10000
)

// CeremonyState is what a ceremony cookie holds.
type CeremonyState struct {
	UserID  store.UserID         `json:"u,omitempty"` // who began a registration; empty for a sign-in
	Expires time.Time            `json:"e"`
	Data    webauthn.SessionData `json:"d"`
}

// CeremonySeal seals ceremony states into cookie values and opens them.
type CeremonySeal struct{ box *sealed.Box }

func newCeremonySeal(key []byte) (*CeremonySeal, error) {
	box, err := sealed.New(key)
	if err != nil {
		return nil, fmt.Errorf("passkey ceremony key: %w", err)
	}
	return &CeremonySeal{box: box}, nil
}

func ceremonyAD(kind string) []byte { return []byte("caddy-pgsession passkey ceremony v1 " + kind) }

// Seal returns the cookie value of a ceremony of kind.
func (c *CeremonySeal) Seal(kind string, state CeremonyState) (string, error) {
	plain, err := json.Marshal(state)
	if err != nil {
		return "", fmt.Errorf("sealing a passkey ceremony: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(c.box.Seal(plain, ceremonyAD(kind))), nil
}

// errCeremonyUnreadable is a cookie that is not a sealed ceremony of the
// kind asked for: altered, made under another key, or of the other kind.
var errCeremonyUnreadable = errors.New("the passkey ceremony cookie does not open")

// Open returns the state sealed in a cookie value of kind.
func (c *CeremonySeal) Open(kind, value string) (CeremonyState, error) {
	var state CeremonyState
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return state, errCeremonyUnreadable
	}
	plain, err := c.box.Open(raw, ceremonyAD(kind))
	if err != nil || json.Unmarshal(plain, &state) != nil {
		return state, errCeremonyUnreadable
	}
	return state, nil
}

// OpenCeremonies makes the seal of ceremony cookies and the limit on
// begins, at Start: the key is derived from secrets_key when it is set, so
// a copy of the database cannot forge a ceremony, and is otherwise the
// random one kept in PostgreSQL, so that every server has the same. Never
// a key of this process alone: another server could not finish its
// ceremonies.
func OpenCeremonies(ctx context.Context, st *store.Store, secrets *SecretBox) (*CeremonySeal, *AddressLimiter, error) {
	key := []byte(nil)
	if secrets != nil {
		key = secrets.ceremonyKey
	} else {
		fresh := make([]byte, 32)
		rand.Read(fresh)
		var err error
		if key, err = st.CeremonyKey(ctx, fresh); err != nil {
			return nil, nil, err
		}
	}
	seal, err := newCeremonySeal(key)
	if err != nil {
		return nil, nil, err
	}
	return seal, newAddressLimiter(BeginBurst, beginEvery, beginAddresses), nil
}

// beginCeremony seals a ceremony's state into the browser's ceremony
// cookie for its finish.
func (h *factors) beginCeremony(w http.ResponseWriter, r *http.Request, kind string, userID store.UserID, data *webauthn.SessionData) error {
	if h.shared.Ceremonies == nil {
		return storeUnavailable(errors.New("the passkey ceremony key is not loaded"))
	}
	value, err := h.shared.Ceremonies.Seal(kind, CeremonyState{UserID: userID, Expires: time.Now().Add(ceremonyLifetime), Data: *data})
	if err != nil {
		return err
	}
	http.SetCookie(w, h.ceremonyCookie(r, value, int(ceremonyLifetime/time.Second)))
	return nil
}

// takeCeremony returns, once, the state of the browser's ceremony of kind,
// and clears its cookie. Its challenge is recorded as used before the
// answer is checked, so a ceremony is finished once whether it verified or
// not, and a cookie that does not open costs no write.
func (h *factors) takeCeremony(w http.ResponseWriter, r *http.Request, kind string) (store.UserID, *webauthn.SessionData, error) {
	c, err := r.Cookie(h.ceremonyCookieName())
	if err != nil || c.Value == "" {
		return "", nil, refuse(ReasonNoPasskeyCeremony, "No passkey request is under way: start again")
	}
	http.SetCookie(w, h.ceremonyCookie(r, "", -1))
	if h.shared.Ceremonies == nil {
		return "", nil, storeUnavailable(errors.New("the passkey ceremony key is not loaded"))
	}
	state, err := h.shared.Ceremonies.Open(kind, c.Value)
	if err != nil {
		return "", nil, refuse(ReasonNoPasskeyCeremony, "The passkey request cannot be read: start again")
	}
	used := refuse(ReasonNoPasskeyCeremony, "The passkey request expired or was used: start again")
	if !time.Now().Before(state.Expires) {
		return "", nil, used
	}
	switch err := h.store.UseChallenge(r.Context(), state.Data.Challenge, state.Expires); {
	case errors.Is(err, store.ErrNoCeremony):
		return "", nil, used
	case err != nil:
		return "", nil, storeUnavailable(err)
	}
	return state.UserID, &state.Data, nil
}

// throttleBegin refuses a begin from an address past its limit with 429.
func (h *factors) throttleBegin(r *http.Request) error {
	if h.shared.BeginLimit == nil {
		return nil
	}
	if wait, ok := h.shared.BeginLimit.allow(clientAddress(clientIP(r)), time.Now()); !ok {
		return &Refusal{status: ReasonStatus[ReasonThrottled], reason: ReasonThrottled,
			message: "Too many sign-ins begun from this address, try again shortly", retryAfter: wait}
	}
	return nil
}

// clientAddress is the unit the begin limit counts: an IPv4 address, or
// the /64 of an IPv6 one, as one client is given a whole /64.
func clientAddress(ip string) string {
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

// AddressLimiter is a token bucket per client address, in memory: a begin
// is refused before it costs anything. It remembers at most max addresses;
// while it is full, addresses it does not know share one bucket, so many
// addresses buy no more than one does, and buckets that have filled up
// again (idle addresses) are forgotten to make room.
type AddressLimiter struct {
	limit     rate.Limit
	burst     int
	max       int
	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	overflow  *rate.Limiter
	lastSweep time.Time
}

func newAddressLimiter(burst int, every time.Duration, max int) *AddressLimiter {
	limit := rate.Every(every)
	return &AddressLimiter{limit: limit, burst: burst, max: max, buckets: map[string]*rate.Limiter{},
		overflow: rate.NewLimiter(limit, burst)}
}

// allow takes a token of addr's bucket; when there is none, it reports how
// long until there is.
func (l *AddressLimiter) allow(addr string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[addr]
	if !ok {
		if len(l.buckets) >= l.max {
			l.sweep(now)
		}
		if len(l.buckets) >= l.max {
			b = l.overflow
		} else {
			b = rate.NewLimiter(l.limit, l.burst)
			l.buckets[addr] = b
		}
	}
	if b.AllowN(now, 1) {
		return 0, true
	}
	missing := 1 - b.TokensAt(now)
	return time.Duration(math.Ceil(missing / float64(l.limit) * float64(time.Second))), false
}

// sweep forgets the addresses whose buckets are full, at most once in the
// time a bucket takes to fill, so a full map is not walked per request.
func (l *AddressLimiter) sweep(now time.Time) {
	refill := time.Duration(float64(l.burst) / float64(l.limit) * float64(time.Second))
	if now.Sub(l.lastSweep) < refill {
		return
	}
	l.lastSweep = now
	for addr, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, addr)
		}
	}
}
