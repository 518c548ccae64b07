package oidctest

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// SignIn plays a person at a provider's login page (the OpenID provider's
// or GitHub's) with net/http: it GETs authorizeURL, chooses user (a
// subject, or a GitHub login) in the page's form, presses "Sign in", and
// returns where the provider sends the browser back: the client's
// callback with code and state, or with an error. A provider that
// redirects at once, refusing the request, has that redirect returned.
// client dials and keeps cookies as the test's browser does; nil is a
// plain client. Redirects are never followed.
func SignIn(tb testing.TB, client *http.Client, authorizeURL, user string) *url.URL {
	tb.Helper()
	return submit(tb, client, authorizeURL, "sign-in", user)
}

// Deny is SignIn pressing "Deny": the callback gets error=access_denied
// and the state.
func Deny(tb testing.TB, client *http.Client, authorizeURL string) *url.URL {
	tb.Helper()
	return submit(tb, client, authorizeURL, "deny", "")
}

func submit(tb testing.TB, client *http.Client, authorizeURL, action, user string) *url.URL {
	tb.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	if client != nil {
		copied := *client
		c = &copied
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	resp, err := c.Get(authorizeURL)
	if err != nil {
		tb.Fatalf("oidctest: opening the login page: %v", err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if loc, err := resp.Location(); err == nil {
		return loc
	}
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("oidctest: the login page answered %s:\n%s", resp.Status, page)
	}
	f, err := parseForm(string(page))
	if err != nil {
		tb.Fatalf("oidctest: reading the login page: %v\n%s", err, page)
	}
	values := f.hidden
	if action == "sign-in" {
		if !slices.Contains(f.options, user) {
			tb.Fatalf("oidctest: the login page offers no account %q, only %q", user, f.options)
		}
		values.Set(f.selectName, user)
	}
	button, ok := f.buttons[action]
	if !ok {
		tb.Fatalf("oidctest: the login page has no %q button:\n%s", action, page)
	}
	values.Set(button, action)

	target, err := resp.Request.URL.Parse(f.action)
	if err != nil {
		tb.Fatalf("oidctest: the login form's action %q: %v", f.action, err)
	}
	resp, err = c.PostForm(target.String(), values)
	if err != nil {
		tb.Fatalf("oidctest: submitting the login form: %v", err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		tb.Fatalf("oidctest: the login form answered %s, not a redirect:\n%s", resp.Status, answer)
	}
	return loc
}

// form is what a person can do with the login page's form.
type form struct {
	action     string
	hidden     url.Values
	selectName string
	options    []string
	// buttons maps each submit button's value to its name.
	buttons map[string]string
}

// parseForm reads the first form of page as a browser would submit it.
func parseForm(page string) (*form, error) {
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		return nil, err
	}
	var f *form
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch {
			case n.Data == "form" && f == nil:
				f = &form{action: attr(n, "action"), hidden: url.Values{}, buttons: map[string]string{}}
			case f == nil:
			case n.Data == "input" && attr(n, "type") == "hidden":
				f.hidden.Add(attr(n, "name"), attr(n, "value"))
			case n.Data == "select":
				f.selectName = attr(n, "name")
			case n.Data == "option":
				f.options = append(f.options, attr(n, "value"))
			case n.Data == "button" && attr(n, "type") == "submit":
				f.buttons[attr(n, "value")] = attr(n, "name")
			}
		}
		for child := n.FirstChild; child != nil; child = child.NextSibling {
			walk(child)
		}
	}
	walk(doc)
	if f == nil {
		return nil, errors.New("the page has no form")
	}
	return f, nil
}

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}
