package pgsession

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
)

// errBodyTooLarge is a body past maxBodyBytes.
var errBodyTooLarge = errors.New("request body too large")

// decodeJSONObject reads one JSON object into dst, refusing what could make
// two parsers disagree about it: a duplicated key (which value counts?),
// a key dst does not know, and anything after the object. The message of
// a returned error is fit to show the client.
func decodeJSONObject(body io.Reader, dst any, fields ...string) error {
	data, err := io.ReadAll(body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return errBodyTooLarge
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

// answerDecodeError answers a body decodeJSONObject or a form parser refused.
func answerDecodeError(w http.ResponseWriter, err error) {
	var tooBig *http.MaxBytesError
	if errors.Is(err, errBodyTooLarge) || errors.As(err, &tooBig) {
		writeJSONError(w, http.StatusRequestEntityTooLarge, "Request body too large")
		return
	}
	writeJSONError(w, http.StatusBadRequest, capitalize(err.Error()))
}
