package pgsession

import (
	"io"
	"mime/quotedprintable"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/smtptest"
	"github.com/pgsession/caddy-pgsession/internal/webtest"
)

// The email tests' helpers: the text of a delivered mail, the link in it,
// and a browser's form posts.

// mailText is the body of m as its reader sees it, quoted-printable decoded.
func mailText(t *testing.T, m smtptest.Message) string {
	t.Helper()
	text, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(m.Body)))
	require.NoError(t, err)
	return string(text)
}

// mailTo waits for a mail to address whose subject has subject in it.
func mailTo(t *testing.T, srv *smtptest.Server, address, subject string) smtptest.Message {
	t.Helper()
	return srv.WaitMessage(t, func(m smtptest.Message) bool {
		return len(m.To) == 1 && m.To[0] == address && strings.Contains(m.Subject, subject)
	})
}

var verifyLink = regexp.MustCompile(`https?://\S+/login/verify-email\?token=[A-Za-z0-9_-]+`)

// verifyLinkIn is the verification link of a mail to address.
func verifyLinkIn(t *testing.T, srv *smtptest.Server, address string) string {
	t.Helper()
	link := verifyLink.FindString(mailText(t, mailTo(t, srv, address, "Confirm your email address")))
	require.NotEmpty(t, link, "a verification link in the mail to %s", address)
	return link
}

// postPage posts a form as a browser's page does: the answer is a page.
func (b *browser) postPage(rawURL string, form url.Values) reply {
	b.t.Helper()
	req := webtest.FormRequest(b.t, rawURL, form)
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	return b.do(req)
}

// countMailsTo is how many mails srv has for address.
func countMailsTo(t *testing.T, srv *smtptest.Server, address string) int {
	t.Helper()
	n := 0
	for _, m := range srv.Messages(t) {
		if len(m.To) == 1 && m.To[0] == address {
			n++
		}
	}
	return n
}
