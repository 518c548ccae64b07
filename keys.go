package pgsession

import (
	"context"
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/pgsession/caddy-pgsession/internal/routes"
)

// The app's keys: secrets_key, which seals the secrets of second factors,
// and the key of passkey ceremony cookies derived from it.

// openSecrets expands secrets_key and makes the box for it; without the
// option there is none and TOTP is off.
func (a *App) openSecrets() error {
	if a.SecretsKey == "" {
		return nil
	}
	key, err := caddy.NewReplacer().ReplaceOrErr(a.SecretsKey, true, true)
	if err != nil {
		// As for database_url: caddy validate runs where the variables of
		// the machine that runs Caddy may not be set; Start reports it.
		a.unexpanded = fmt.Errorf("secrets_key: %w", err)
		return nil
	}
	key = strings.TrimSpace(key)
	if len(key) < routes.MinSecretsKeyLength {
		return fmt.Errorf("secrets_key must be at least %d characters once expanded (caddy pg-session secrets-key prints one)",
			routes.MinSecretsKeyLength)
	}
	a.shared.Secrets, err = routes.NewSecretBox(key)
	return err
}

// openCeremonies makes the seal of passkey ceremony cookies and the limit on
// their begins, at Start (see routes.OpenCeremonies).
func (a *App) openCeremonies(ctx context.Context) error {
	var err error
	a.shared.Ceremonies, a.shared.BeginLimit, err = routes.OpenCeremonies(ctx, a.store, a.shared.Secrets)
	return err
}
