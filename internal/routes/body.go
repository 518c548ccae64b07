package routes

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"unicode/utf8"

	"github.com/pgsession/caddy-pgsession/internal/request"
	"github.com/pgsession/caddy-pgsession/store"
)

// Request bodies of the plugin's own routes, read with package request
// and refused with the right status when they cannot be.

// badBody refuses a body decodeJSONObject or a form parser could not read:
// 413 past the size limit, 400 otherwise.
func badBody(err error) *Refusal {
	var tooBig *http.MaxBytesError
	if errors.Is(err, request.ErrBodyTooLarge) || errors.As(err, &tooBig) {
		return refuse(ReasonBodyTooLarge, "Request body too large")
	}
	return refuse(ReasonBadRequest, capitalize(err.Error()))
}

// badForm refuses a form body that could not be parsed: 413 past the size
// limit, 400 otherwise.
func badForm(err error) *Refusal {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return badBody(err)
	}
	return refuse(ReasonBadRequest, "Request body is not a valid form")
}

// badInput refuses a username or password the store would not take.
func badInput(err *store.InputError) *Refusal {
	return refuse(ReasonBadRequest, capitalize(err.Msg))
}

// credentials is what login and register read, from JSON or a form.
type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Remember bool   `json:"remember"`
	Email    string `json:"email"` // a registration's under verify_email, read only when asked for
	Redirect string `json:"-"`
	form     bool
}

// readCredentials decodes a JSON body or an HTML form, refusing (400, 413)
// one that cannot be read, gives a field twice or is too long; extra names
// the fields it reads besides username, password and remember ("email").
func readCredentials(r *http.Request, extra ...string) (credentials, error) {
	var c credentials
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mediaType {
	case "application/x-www-form-urlencoded", "multipart/form-data":
		c.form = true
		var err error
		if mediaType == "multipart/form-data" {
			err = r.ParseMultipartForm(maxBodyBytes)
		} else {
			err = r.ParseForm()
		}
		if err != nil {
			return c, badForm(err)
		}
		for _, field := range append([]string{"username", "password", "redirect", "remember"}, extra...) {
			if len(r.PostForm[field]) > 1 {
				return c, refuse(ReasonBadRequest, fmt.Sprintf("Field %q given twice", field))
			}
		}
		c.Username, c.Password, c.Redirect = r.PostFormValue("username"), r.PostFormValue("password"), r.PostFormValue("redirect")
		c.Remember = r.PostFormValue("remember") == "on"
		if slices.Contains(extra, "email") {
			c.Email = r.PostFormValue("email")
		}
	default:
		if err := request.DecodeJSONObject(r.Body, &c, append([]string{"username", "password", "remember"}, extra...)...); err != nil {
			return c, badBody(err)
		}
	}
	// Lengths are checked before anything is looked up or hashed: a clear
	// 400 beats a slow 401 for input no account could match.
	if utf8.RuneCountInString(c.Username) > store.MaxUsernameLength {
		return c, refuse(ReasonBadRequest, fmt.Sprintf("Username is longer than %d characters", store.MaxUsernameLength))
	}
	if len(c.Password) > store.MaxPasswordLength {
		return c, refuse(ReasonBadRequest, fmt.Sprintf("Password is longer than %d bytes", store.MaxPasswordLength))
	}
	return c, nil
}
