package pgsession

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// rangeRule is the range of a count or duration option, and what 0 means
// for it: the same in the Caddyfile and in JSON, where an option left out
// takes its default.
type rangeRule struct {
	duration bool
	// zero says what 0 does, as the errors and docs say it; "" when 0 is
	// refused, for options where 0 has no sense of its own (a lifetime of
	// nothing, a limit that refuses everyone).
	zero      string
	oneSecond bool   // a duration must be at least a second, below which a session could not be used
	examples  string // how a duration is written, for its error
}

// rangeRules holds every count and duration option of the global option
// and the directive, which share the names of their JSON fields.
var rangeRules = map[string]rangeRule{
	"cleanup_interval":  {duration: true},
	"max_connections":   {},
	"cache_size":        {zero: "0 turns the cache off"},
	"offline_grace":     {duration: true, zero: "0 turns it off", examples: "30s, 1m"},
	"history_retention": {duration: true, zero: "0 keeps no history", examples: "30d, 2160h"},
	"audit_retention":   {duration: true, zero: "0 keeps the audit trail forever", examples: "365d, 8760h"},

	"lifetime":                      {duration: true, oneSecond: true},
	"idle_timeout":                  {duration: true, oneSecond: true, zero: "0 turns it off"},
	"renewal_interval":              {duration: true},
	"remember_lifetime":             {duration: true, zero: "0 turns remember me off", examples: "12h, 30d"},
	"max_sessions_per_user":         {zero: "0 means unlimited"},
	"max_failed_logins_per_account": {},
	"max_failed_logins_per_ip":      {},
	"max_registrations_per_ip":      {},
	"failed_login_window":           {duration: true},
	"invitation_lifetime":           {duration: true, oneSecond: true},
	"reset_link_lifetime":           {duration: true, oneSecond: true, examples: "15m, 30m, 2h"},
}

// check refuses v, the option's value (in nanoseconds for a duration), when
// it is out of range.
func (r rangeRule) check(option string, v int64) error {
	switch {
	case v == 0 && r.zero != "":
		return nil
	case !r.duration && (v < 0 || v == 0):
		return r.notOfItsKind(option, strconv.FormatInt(v, 10))
	case v < 0 && r.zero != "":
		return optionErrorf(option, "%s must not be negative (%s)", option, r.zero)
	case v <= 0:
		return optionErrorf(option, "%s must be positive, not %q", option, durationText(v))
	case r.oneSecond && v < int64(time.Second):
		return optionErrorf(option, "%s must be at least one second", option)
	}
	return nil
}

// notOfItsKind is the error for text that is not the option's kind of
// value, or for a count out of range, which reads the same.
func (r rangeRule) notOfItsKind(option, text string) error {
	switch {
	case r.duration:
		examples := r.examples
		if examples == "" {
			examples = "90s, 30m, 12h, 7d"
		}
		if r.zero != "" {
			examples += "; " + r.zero
		}
		return optionErrorf(option, "%s: %q is not a duration (examples: %s)", option, text, examples)
	case r.zero != "":
		return optionErrorf(option, "%s: %q is not a whole number (%s)", option, text, r.zero)
	}
	return optionErrorf(option, "%s: %q is not a positive whole number", option, text)
}

// durationText writes 0 as users write it, rather than "0s".
func durationText(v int64) string {
	if v == 0 {
		return "0"
	}
	return time.Duration(v).String()
}

// numberOption is the value of a count or duration option.
type numberOption struct {
	option string
	value  int64
	set    bool // a pointer field that is not nil, or a plain one that is not 0
}

func plainNumber[T ~int | ~int64](option string, v T) numberOption {
	return numberOption{option, int64(v), v != 0}
}

func pointerNumber[T ~int | ~int64](option string, v *T) numberOption {
	if v == nil {
		return numberOption{option: option}
	}
	return numberOption{option, int64(*v), true}
}

func (a *App) numbers() []numberOption {
	return []numberOption{plainNumber("cleanup_interval", a.CleanupInterval), plainNumber("max_connections", a.MaxConnections),
		pointerNumber("cache_size", a.CacheSize), pointerNumber("offline_grace", a.OfflineGrace),
		pointerNumber("history_retention", a.HistoryRetention), pointerNumber("audit_retention", a.AuditRetention)}
}

func (h *Handler) numbers() []numberOption {
	return []numberOption{plainNumber("lifetime", h.Lifetime), plainNumber("idle_timeout", h.IdleTimeout),
		plainNumber("renewal_interval", h.RenewalInterval), pointerNumber("remember_lifetime", h.RememberLifetime),
		plainNumber("max_sessions_per_user", h.MaxSessionsPerUser),
		plainNumber("max_failed_logins_per_account", h.MaxFailedLoginsPerAccount),
		plainNumber("max_failed_logins_per_ip", h.MaxFailedLoginsPerIP),
		plainNumber("max_registrations_per_ip", h.MaxRegistrationsPerIP), plainNumber("failed_login_window", h.FailedLoginWindow),
		plainNumber("invitation_lifetime", h.InvitationLifetime),
		plainNumber("reset_link_lifetime", h.ResetLinkLifetime)}
}

// checkRanges applies rangeRules to numbers; zeroes are the options JSON
// gave as 0, whose fields cannot tell 0 from unset, and which Provision may
// since have set to their default.
func checkRanges(numbers []numberOption, zeroes []string) error {
	for _, n := range numbers {
		if slices.Contains(zeroes, n.option) {
			n.value, n.set = 0, true
		}
		if !n.set {
			continue
		}
		if err := rangeRules[n.option].check(n.option, n.value); err != nil {
			return err
		}
	}
	return nil
}

// UnmarshalJSON reads the app's JSON strictly, as Caddy does, and notes the
// options given as 0 where 0 is refused, which would otherwise read as left
// out and take the default the Caddyfile refuses to give them.
func (a *App) UnmarshalJSON(b []byte) error {
	type fields App // the fields without this method
	if err := caddy.StrictUnmarshalJSON(b, (*fields)(a)); err != nil {
		return err
	}
	a.zeroes = refusedZeroes(b)
	return nil
}

// UnmarshalJSON reads the handler's JSON as the app's is read.
func (h *Handler) UnmarshalJSON(b []byte) error {
	type fields Handler
	if err := caddy.StrictUnmarshalJSON(b, (*fields)(h)); err != nil {
		return err
	}
	h.zeroes = refusedZeroes(b)
	return nil
}

// refusedZeroes returns the options of the JSON object b given as 0 (a
// number, or a duration string such as "0s") where rangeRules refuse 0.
func refusedZeroes(b []byte) []string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(b, &fields) != nil {
		return nil
	}
	var zeroes []string
	for option, raw := range fields {
		rule, ok := rangeRules[option]
		var v caddy.Duration // reads a count too: a number is nanoseconds
		if ok && rule.zero == "" && string(raw) != "null" && json.Unmarshal(raw, &v) == nil && v == 0 {
			zeroes = append(zeroes, option)
		}
	}
	slices.Sort(zeroes)
	return zeroes
}
