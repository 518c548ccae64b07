package pgsession

import (
	"context"
	"crypto/rand"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/mail"
	"github.com/pgsession/caddy-pgsession/internal/smtptest"
)

// The smtp global option in a running site: the app's sender is the
// routes' Shared.Mail, delivering to a real SMTP server (internal/smtptest).

// smtpBlock is the smtp block of the global option for opts.smtp: a server
// in the clear without AUTH, as a relay on the same host is. A test whose
// opts.app has an smtp block of its own (TLS, a password) keeps it.
func smtpBlock(opts siteOptions) string {
	if opts.smtp == nil || strings.Contains(opts.app, "smtp {") {
		return ""
	}
	return "smtp {\n host " + opts.smtp.Host() + "\n port " + strconv.Itoa(opts.smtp.Port()) +
		"\n from site@example.com\n tls off\n}"
}

// quickMail makes app's sender retry within a test's patience and stop
// at once, and trust srv's certificate.
func quickMail(app *App, srv *smtptest.Server) {
	if srv == nil {
		return
	}
	app.mail.options = mail.Options{RootCAs: srv.CACertPool(), StopDeadline: time.Second,
		Backoff: []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
			800 * time.Millisecond, time.Second, time.Second, time.Second, time.Second, time.Second, time.Second}}
}

func TestSiteSendsMailThroughTheSMTPOption(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, smtptest.Options{})
	s := startSite(t, siteOptions{db: newTestDB(t).url, smtp: srv})
	require.NotNil(t, s.app.shared.Mail, "the routes get the sender")

	s.app.shared.Mail.Send("reset", "alice@example.org", "Reset your password", "https://example.com/login/reset?token=t0ken")
	m := srv.WaitMessage(t, nil)
	assert.Equal(t, "site@example.com", m.From)
	assert.Equal(t, []string{"alice@example.org"}, m.To)
	assert.Equal(t, "Reset your password", m.Subject)
	require.Eventually(t, func() bool { return s.metric(t, "mail_sent_total", "kind", "reset") == 1 },
		smtptest.WaitTimeout, 10*time.Millisecond, "counted in the config's metrics")
	assert.Zero(t, s.metric(t, "mail_queue_length", "", ""))
	assert.Zero(t, s.metric(t, "mail_failed_total", "kind", "reset"))
}

func TestSiteWithoutSMTPHasNoMail(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOptions{db: newTestDB(t).url})
	assert.Nil(t, s.app.shared.Mail, "nil, not a sender that drops everything")
	assert.Zero(t, s.metric(t, "mail_sent_total", "kind", "invitation"), "the metrics are there all the same")
}

// A submission server with STARTTLS and a password from the environment,
// as the Caddyfile.example has it; a failure is logged without the password.
func TestSiteMailWithStartTLSAndAPasswordFromTheEnvironment(t *testing.T) {
	t.Parallel()
	password := "env-" + rand.Text()
	srv := smtptest.Start(t, smtptest.Options{TLS: "starttls", Username: "app", Password: password})
	variable := "PGSESSION_TEST_SMTP_PASSWORD_" + rand.Text()
	require.NoError(t, os.Setenv(variable, password))
	t.Cleanup(func() { os.Unsetenv(variable) })
	s := startSite(t, siteOptions{db: newTestDB(t).url, smtp: srv, app: "smtp {\n host " + srv.Host() +
		"\n port " + strconv.Itoa(srv.Port()) + "\n username app\n password {env." + variable + "}\n from \"Example Docs <docs@example.com>\"\n}"})

	s.app.shared.Mail.Send("verify_email", "bob@example.org", "Confirm your address", "https://example.com/login/verify-email?token=t0ken")
	m := srv.WaitMessage(t, nil)
	assert.True(t, m.TLS)
	assert.Equal(t, "app", m.Username)
	assert.Equal(t, "docs@example.com", m.From)

	srv.FailNext(t, 1, 554)
	s.app.shared.Mail.Send("verify_email", "bob@example.org", "Confirm your address", "https://example.com/login/verify-email?token=t0ken")
	require.Eventually(t, func() bool { return s.logged(t, "mail not delivered") }, smtptest.WaitTimeout, 10*time.Millisecond)
	assert.Equal(t, 1.0, s.metric(t, "mail_failed_total", "kind", "verify_email"))
	for _, secret := range []string{password, "t0ken", "bob@"} {
		assert.NotContains(t, s.logs(), secret)
	}
}

// caddy validate provisions without the variables of the machine that runs
// Caddy: an smtp password that cannot be expanded fails the start, saying
// which, and not the provisioning.
func TestSMTPPlaceholderReportedAtStart(t *testing.T) {
	t.Parallel()
	app := new(App)
	require.NoError(t, app.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`pg_session {
		database_url postgres://caddy@127.0.0.1:1/sessions
		smtp {
			host smtp.example.com
			username app
			password {env.PGSESSION_TEST_UNSET_SMTP_PASSWORD}
			from site@example.com
		}
	}`)))
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	require.NoError(t, app.Provision(ctx), "provisioning (caddy validate) passes")
	defer app.Cleanup()
	assert.Nil(t, app.shared.Mail)
	err := app.Start()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "smtp password")
	assert.Contains(t, err.Error(), "{env.PGSESSION_TEST_UNSET_SMTP_PASSWORD}", "names the variable")
	assert.Contains(t, err.Error(), "caddy validate sends no mail")

	// A password written out whose { is no placeholder: the error shows no piece of it.
	app = new(App)
	require.NoError(t, app.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`pg_session {
		database_url postgres://caddy@127.0.0.1:1/sessions
		smtp {
			host smtp.example.com
			username app
			password "pa{ss-secret}word"
			from site@example.com
		}
	}`)))
	ctx, cancel = caddy.NewContext(caddy.Context{Context: context.Background()}) // a registry of its own
	defer cancel()
	require.NoError(t, app.Provision(ctx))
	defer app.Cleanup()
	err = app.Start()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `write a literal { as \{`)
	assert.NotContains(t, err.Error(), "ss-secret")
}

// The rules hold for JSON as for the Caddyfile; a host that a placeholder
// gives is held to them once expanded.
func TestSMTPRulesInJSON(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		cfg  mail.Config
		want string
	}{
		"no host":                   {mail.Config{From: "site@example.com"}, "smtp needs host"},
		"no from":                   {mail.Config{Host: "smtp.example.com"}, "smtp needs from"},
		"a bad from":                {mail.Config{Host: "smtp.example.com", From: "site"}, "smtp from"},
		"a password alone":          {mail.Config{Host: "smtp.example.com", From: "site@example.com", Password: "p"}, "password without username"},
		"a password in the clear":   {mail.Config{Host: "smtp.example.com", From: "a@b.c", Username: "u", Password: "p", TLS: "off"}, "in the clear"},
		"a mode of its own":         {mail.Config{Host: "smtp.example.com", From: "a@b.c", TLS: "ssl"}, "starttls, tls or off"},
		"a port too high":           {mail.Config{Host: "smtp.example.com", From: "a@b.c", Port: 70000}, "1 to 65535"},
		"a URL for a host":          {mail.Config{Host: "smtp://smtp.example.com", From: "a@b.c"}, "without scheme or port"},
		"a relay on localhost":      {mail.Config{Host: "localhost", From: "a@b.c", Username: "u", Password: "p", TLS: "off"}, ""},
		"a relay on ::1":            {mail.Config{Host: "::1", From: "a@b.c", Username: "u", Password: "p", TLS: "off"}, ""},
		"placeholders, unexpanded":  {mail.Config{Host: "{env.SMTP_HOST}", From: "{env.SMTP_FROM}", Username: "u", TLS: "off"}, ""},
		"a submission server":       {mail.Config{Host: "smtp.example.com", From: "Ex <a@b.c>", Username: "u", Password: "p"}, ""},
		"implicit TLS on port 2465": {mail.Config{Host: "smtp.example.com", From: "a@b.c", TLS: "tls", Port: 2465}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			err := (&App{SMTP: &c.cfg}).Validate()
			if c.want == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}

	variable := "PGSESSION_TEST_SMTP_HOST_" + rand.Text()
	require.NoError(t, os.Setenv(variable, "smtp.example.com"))
	t.Cleanup(func() { os.Unsetenv(variable) })
	app := &App{DatabaseURL: "postgres://caddy@127.0.0.1:1/sessions",
		SMTP: &mail.Config{Host: "{env." + variable + "}", From: "a@b.c", Username: "u", Password: "p", TLS: "off"}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := app.Provision(ctx)
	defer app.Cleanup()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "in the clear to smtp.example.com")
}

// A reload keeps the sender and its queue: a message waiting for a mail
// server that is down goes out once it is back, though the config that
// sent it has stopped.
func TestAReloadKeepsTheMailQueue(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, smtptest.Options{})
	db := newTestDB(t)
	old := startSite(t, siteOptions{db: db.url, smtp: srv})
	srv.Stop()
	old.app.shared.Mail.Send("reset", "alice@example.org", "Sent before the reload", "A link.")
	require.Eventually(t, func() bool { return old.metric(t, "mail_retries_total", "", "") >= 1 },
		smtptest.WaitTimeout, 10*time.Millisecond, "waiting for the server")

	reloaded := startSite(t, siteOptions{db: db.url, smtp: srv, reloads: old})
	assert.Same(t, old.app.shared.Mail, reloaded.app.shared.Mail, "one sender for both configs")
	old.stop()
	srv.Start()
	m := srv.WaitMessage(t, nil)
	assert.Equal(t, "Sent before the reload", m.Subject)
	assert.False(t, old.logged(t, "mail dropped"), "nothing dropped at the old config's stop")
	assert.False(t, reloaded.logged(t, "mail dropped"))
}
