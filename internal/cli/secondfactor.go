package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pgsession/caddy-pgsession/store"
)

// userReset2FA removes a user's second factors, for someone who lost their
// authenticator and their recovery codes, and ends their sessions.
func (c *state) userReset2FA(cmd *cobra.Command, args []string) error {
	name := args[0]
	return c.withUser(cmd, name, func(ctx context.Context, s *store.Store, u *store.User) error {
		ended, err := s.ResetSecondFactors(ctx, u.ID)
		if errors.Is(err, store.ErrUserNotFound) {
			return noUser(name)
		}
		if err != nil {
			return err
		}
		c.audit(ctx, "user.second_factors_reset", u.Username, "")
		fmt.Fprintf(cmd.OutOrStdout(), "removed the second factors of %q and ended %s\n", u.Username, count(ended, "session"))
		return nil
	})
}

// secretsKey prints a new key for the secrets_key option: 32 random bytes,
// 43 characters.
func secretsKey(cmd *cobra.Command, _ []string) error {
	b := make([]byte, 32)
	rand.Read(b)
	fmt.Fprintln(cmd.OutOrStdout(), base64.RawURLEncoding.EncodeToString(b))
	return nil
}
