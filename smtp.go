package pgsession

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/mail"
	"github.com/pgsession/caddy-pgsession/internal/routes"
)

// The smtp block of the global option: its parsing, its rules, and the
// sender Provision makes of it. Nothing here connects to the mail server:
// the sender does, in the background, when a message is sent, so
// `caddy validate` never reaches it.

// smtpArg reads the smtp block, whose options are read as the global
// option's are, and keeps where each was set for its errors.
func (a *App) smtpArg(d *caddyfile.Dispenser) error {
	if a.SMTP != nil {
		return d.Err("smtp given more than once: one mail server serves the sites of the config")
	}
	if d.NextArg() {
		return d.Errf("smtp takes no value, only a block: smtp { host ... }, got %q", d.Val())
	}
	cfg := new(mail.Config)
	a.SMTP, a.mail.at = cfg, &optionPositions{block: d.Token(), options: map[string]caddyfile.Token{}}
	options := smtpOptions(cfg)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		read, ok := options[d.Val()]
		if !ok {
			return d.Errf("unknown smtp option %q (smtp takes host, port, username, password, from and tls)", d.Val())
		}
		a.mail.at.options["smtp."+d.Val()] = d.Token()
		if err := read(d); err != nil {
			return err
		}
	}
	return nil
}

// smtpOptions reads each option of the smtp block into c.
func smtpOptions(c *mail.Config) map[string]readOption {
	return map[string]readOption{
		"host":     textArg(&c.Host),
		"port":     portArg(&c.Port),
		"username": textArg(&c.Username),
		"password": textArg(&c.Password),
		"from":     textArg(&c.From),
		"tls":      textArg(&c.TLS),
	}
}

// portArg reads a TCP port.
func portArg(dst *int) readOption {
	return func(d *caddyfile.Dispenser) error {
		var s string
		if err := singleArg(d, &s); err != nil {
			return err
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 65535 {
			return d.Errf("smtp port must be a number from 1 to 65535, not %q", s)
		}
		*dst = n
		return nil
	}
}

// locateSMTP lets at.locate point at the smtp block's options, named
// smtp.<option> in the rules' errors.
func (a *App) locateSMTP(at optionPositions) {
	if a.mail.at != nil {
		for name, token := range a.mail.at.options {
			at.options[name] = token
		}
	}
	a.mail.at = nil
}

// checkSMTP applies the rules of the smtp block. A value with a
// placeholder is checked once expanded, at Provision (provisionMail).
func checkSMTP(c *mail.Config) error {
	if c == nil {
		return nil
	}
	literal := func(v string) bool { return v != "" && !strings.Contains(v, "{") }
	switch {
	case c.Host == "":
		return optionErrorf("smtp", "smtp needs host, the mail server, as in host smtp.example.com")
	case literal(c.Host) && strings.ContainsAny(c.Host, "/: @") && net.ParseIP(c.Host) == nil:
		return optionErrorf("smtp.host", "smtp host must be a host name or address alone, without scheme or port "+
			"(port is an option of its own), not %q", c.Host)
	case c.From == "":
		return optionErrorf("smtp", `smtp needs from, the sender's address, as in from "Example <site@example.com>"`)
	case c.Port < 0 || c.Port > 65535:
		return optionErrorf("smtp.port", "smtp port must be a number from 1 to 65535, not %d", c.Port)
	case c.TLS != "" && c.TLS != mail.TLSStart && c.TLS != mail.TLSImplicit && c.TLS != mail.TLSOff:
		return optionErrorf("smtp.tls", "smtp tls must be starttls, tls or off, not %q", c.TLS)
	case c.Password != "" && c.Username == "":
		return optionErrorf("smtp.password", "smtp password without username: AUTH needs both, or neither for a "+
			"server that takes mail without signing in")
	}
	if literal(c.From) {
		if _, err := mail.ParseFrom(c.From); err != nil {
			return optionErrorf("smtp.from", "smtp from: %v", err)
		}
	}
	if c.Username != "" && c.Mode() == mail.TLSOff && literal(c.Host) && !loopbackHost(c.Host) {
		return optionErrorf("smtp.tls", "smtp tls off with a username would send the password in the clear to %s: "+
			"use tls starttls or tls, or tls off only for a relay on this host (localhost, 127.0.0.1, ::1)", c.Host)
	}
	return nil
}

// loopbackHost says whether host is this machine, where nothing crosses a network.
func loopbackHost(host string) bool {
	ip := net.ParseIP(host)
	return strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") || (ip != nil && ip.IsLoopback())
}

// provisionMail expands the smtp block's placeholders and makes the
// sender, which Start starts. A placeholder that cannot be expanded is
// reported by Start, as database_url's is: `caddy validate` often runs
// where the variables of the machine that runs Caddy are not set.
func (a *App) provisionMail() error {
	if a.SMTP == nil {
		return nil
	}
	cfg := *a.SMTP
	var errs []error
	for _, f := range []struct {
		option string
		value  *string
	}{{"host", &cfg.Host}, {"username", &cfg.Username}, {"password", &cfg.Password}, {"from", &cfg.From}} {
		if *f.value == "" {
			continue
		}
		v, err := caddy.NewReplacer().ReplaceOrErr(*f.value, true, true)
		switch {
		case err != nil && f.option == "password" && !onePlaceholder.MatchString(*f.value):
			// The replacer's error quotes what it took for a placeholder,
			// which in a password written out may be a piece of it.
			errs = append(errs, errors.New(`smtp password: it holds a "{" that is no placeholder: write a literal { as \{`))
		case err != nil:
			// The error names the placeholder, never the value it stands for.
			errs = append(errs, fmt.Errorf("smtp %s: %w", f.option, err))
		}
		*f.value = v
	}
	if len(errs) > 0 {
		a.mail.unexpanded = errors.Join(errs...)
		a.logger.Warn("an option of smtp cannot be expanded here; caddy run will need it", zap.Error(a.mail.unexpanded))
		return nil
	}
	if err := checkSMTP(&cfg); err != nil {
		return fmt.Errorf("once its placeholders are expanded: %w", err)
	}
	opts := a.mail.options
	if a.metrics != nil {
		opts.Metrics = a.metrics.mail
	}
	// The sender is shared by the configs of a reload that keep the smtp
	// block and the pool (whose metrics it counts in): its queue, with the
	// retries a down server is waiting for, carries over.
	raw, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	key := fmt.Sprintf("%x", sha256.Sum256(fmt.Appendf(raw, "\x00%s\x00%s", a.poolKey, a.instance)))
	val, _, err := senders.LoadOrNew(key, func() (caddy.Destructor, error) {
		s, err := mail.New(cfg, opts)
		return sharedSender{s}, err
	})
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	a.mail.key, a.mail.sender = key, val.(sharedSender).Sender
	a.shared.Mail = a.mail.sender
	return nil
}

// onePlaceholder is a value that is a placeholder alone, such as {env.SMTP_PASSWORD}.
var onePlaceholder = regexp.MustCompile(`^\{[^{}]+\}$`)

// senders shares each smtp block's sender across config reloads, as pools
// shares the pool; the key holds a hash of the block, never its password.
var senders = caddy.NewUsagePool()

// sharedSender is the value senders holds: it stops once no config uses it.
type sharedSender struct{ *mail.Sender }

func (s sharedSender) Destruct() error {
	s.Stop()
	return nil
}

// appMail is what the app keeps of its smtp block.
type appMail struct {
	at         *optionPositions // where the block's options were set, while the Caddyfile is parsed
	sender     *mail.Sender     // nil without smtp
	key        string           // the sender's in senders
	options    mail.Options     // tests retry sooner
	unexpanded error            // why a placeholder could not be expanded at provision; Start reports it
}

func (m *appMail) start(logger *zap.Logger) {
	if m.sender != nil {
		m.sender.Start(logger)
	}
}

// cleanup releases this config's hold on the sender; the last config's
// stops it, and its queue gets StopDeadline to go out.
func (m *appMail) cleanup() error {
	if m.key == "" {
		return nil
	}
	_, err := senders.Delete(m.key)
	m.key, m.sender = "", nil
	return err
}

// Interface guards
var _ routes.Mailer = (*mail.Sender)(nil)
