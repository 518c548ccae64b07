// Package request reads what clients send to the plugin's own routes,
// strictly: bodies two parsers could read differently are refused, and a
// redirect target must stay on the site. It is pure functions, fuzzed on
// their own without building Caddy.
package request

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
)

// ErrBodyTooLarge is a body past maxBodyBytes.
var ErrBodyTooLarge = errors.New("request body too large")

// DecodeJSONObject reads one JSON object into dst, refusing what could make
// two parsers disagree about it: a duplicated key (which value counts?),
// a key dst does not know, and anything after the object. The message of
// a returned error is fit to show the client.
func DecodeJSONObject(body io.Reader, dst any, fields ...string) error {
	data, err := io.ReadAll(body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return ErrBodyTooLarge
	}
	if err != nil {
		return errors.New("request body could not be read")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return errors.New("request body must be a JSON object")
	}
	seen := make(map[string]bool, len(fields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errors.New("request body is not valid JSON")
		}
		key, _ := tok.(string)
		if !slices.Contains(fields, key) {
			return fmt.Errorf("unknown field %q", key)
		}
		if seen[key] {
			return fmt.Errorf("field %q given twice", key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return errors.New("request body is not valid JSON")
		}
	}
	if _, err := dec.Token(); err != nil {
		return errors.New("request body is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("request body must be one JSON object")
	}
	strict := json.NewDecoder(bytes.NewReader(data))
	strict.DisallowUnknownFields()
	if err := strict.Decode(dst); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return fmt.Errorf("field %q has the wrong type", typeErr.Field)
		}
		return errors.New("request body is not valid JSON")
	}
	return nil
}

// SafeRedirect returns target when it is a path on this site, and "/"
// otherwise, so the login form cannot be used to send people elsewhere.
// Browsers read a backslash as a slash and drop tabs and newlines, so
// "/\evil.example" or "/\t/evil.example" would leave the site.
func SafeRedirect(target string) string {
	if target == "" || target[0] != '/' || len(target) > 2048 {
		return "/"
	}
	if len(target) > 1 && (target[1] == '/' || target[1] == '\\') {
		return "/"
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return target
}
