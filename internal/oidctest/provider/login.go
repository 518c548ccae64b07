package main

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
)

// loginPage is the page a person sees at the authorization endpoint: who
// to be, then "Sign in" or "Deny". The request's own parameters travel in
// hidden fields, so the form posts back the authorization request whole.
type loginPage struct {
	Title   string
	Client  string
	Action  string
	Fields  []field
	Users   []option
	Message string
}

type field struct{ Name, Value string }

type option struct{ Value, Label string }

var loginTemplate = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>body{font-family:sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem}
select,button{font-size:1rem;margin:.5rem 0;padding:.4rem}</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
<p>The application <strong>{{.Client}}</strong> asks who you are.</p>
{{if .Message}}<p role="alert">{{.Message}}</p>{{end}}
<form method="post" action="{{.Action}}">
{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}{{if .Users}}<p><label for="user">Account</label>
<select id="user" name="user">{{range .Users}}<option value="{{.Value}}">{{.Label}}</option>{{end}}</select></p>
<p><button id="sign-in" type="submit" name="action" value="sign-in">Sign in</button>
{{else}}<p>No accounts yet: a test adds them with POST /control/users.</p>
<p>{{end}}<button id="deny" type="submit" name="action" value="deny">Deny</button></p>
</form>
</main>
</body>
</html>
`))

// formFields turns the authorization request's parameters into hidden
// fields, leaving out the form's own.
func formFields(form url.Values) []field {
	var fields []field
	names := make([]string, 0, len(form))
	for name := range form {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name == "user" || name == "action" {
			continue
		}
		for _, v := range form[name] {
			fields = append(fields, field{name, v})
		}
	}
	return fields
}

func renderLogin(w http.ResponseWriter, status int, page loginPage) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	loginTemplate.Execute(w, page)
}

var errorTemplate = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Error</title></head>
<body><h1>The request was refused</h1><p role="alert">{{.}}</p></body></html>
`))

// fromClient reads an authorization request and answers the error page,
// with status, unless it comes from the one client.
func (s *server) fromClient(w http.ResponseWriter, r *http.Request, status int) (url.Values, bool) {
	if err := r.ParseForm(); err != nil {
		errorPage(w, http.StatusBadRequest, err.Error())
		return nil, false
	}
	if id := r.Form.Get("client_id"); id != s.cfg.clientID {
		errorPage(w, status, fmt.Sprintf("no application has the client_id %q", id))
		return nil, false
	}
	return r.Form, true
}

// errorPage answers a request the provider may not redirect back, such as
// one naming an unknown client or redirect URI.
func errorPage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	errorTemplate.Execute(w, msg)
}

// redirectBack sends the browser to the client's redirect URI with params
// added to its query, as the authorization code flow answers.
func redirectBack(w http.ResponseWriter, r *http.Request, redirectURI string, params url.Values) {
	u, err := url.Parse(redirectURI)
	if err != nil {
		errorPage(w, http.StatusBadRequest, "the redirect URI does not parse")
		return
	}
	q := u.Query()
	for name, values := range params {
		if values[0] != "" {
			q.Set(name, values[0])
		}
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}
