package store

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
)

// Usernames follow the PRECIS username profiles of RFC 8265, so that names
// which look alike are one account: "ＢＯＢ" (fullwidth) is "BOB", and
// "BOB" and "bob" share the key "bob". Invisible characters (a zero-width
// space), controls, symbols such as emoji and most punctuation are refused.
// Like RFC 8265's "userparts", a name may hold single spaces between parts
// ("Ada Lovelace"); each part must fit the profile.

// Username is a username prepared for storage: Display is what the user and
// the upstream see (width-mapped and normalised, case kept), Key what names
// are compared and made unique by.
type Username struct {
	Display string
	Key     string
}

// PrepareUsername checks name against the username profile and returns its
// stored forms, or an *InputError saying why it cannot be a username.
func PrepareUsername(name string) (Username, error) {
	if name == "" {
		return Username{}, &InputError{"username is empty"}
	}
	if !utf8.ValidString(name) {
		return Username{}, &InputError{"username is not valid UTF-8"}
	}
	if utf8.RuneCountInString(name) > MaxUsernameLength {
		return Username{}, &InputError{fmt.Sprintf("username is longer than %d characters", MaxUsernameLength)}
	}
	if strings.TrimSpace(name) != name {
		return Username{}, &InputError{"username starts or ends with a space"}
	}
	var display, key []string
	for part := range strings.SplitSeq(name, " ") {
		if part == "" {
			return Username{}, &InputError{"username has two spaces in a row"}
		}
		d, err := precis.UsernameCasePreserved.String(part)
		if err != nil {
			return Username{}, refusedCharacter(part)
		}
		k, err := precis.UsernameCaseMapped.String(part)
		if err != nil {
			return Username{}, refusedCharacter(part)
		}
		display, key = append(display, d), append(key, k)
	}
	u := Username{Display: strings.Join(display, " "), Key: strings.Join(key, " ")}
	if utf8.RuneCountInString(u.Display) > MaxUsernameLength {
		return Username{}, &InputError{fmt.Sprintf("username is longer than %d characters", MaxUsernameLength)}
	}
	return u, nil
}

// ValidateUsername reports why name cannot be a username, or nil.
func ValidateUsername(name string) error {
	_, err := PrepareUsername(name)
	return err
}

// refusedCharacter names the first character of part that the profile
// refuses on its own, so the message points at what to change.
func refusedCharacter(part string) error {
	for _, r := range part {
		if _, err := precis.UsernameCasePreserved.String(string(r)); err == nil {
			continue
		}
		switch {
		case unicode.IsControl(r):
			return &InputError{"username contains a control character"}
		case unicode.IsSpace(r):
			return &InputError{fmt.Sprintf("username contains a space other than U+0020 (%U)", r)}
		case unicode.IsGraphic(r) && !unicode.Is(unicode.Cf, r):
			return &InputError{fmt.Sprintf("username contains %q (%U), which usernames may not contain", r, r)}
		default:
			return &InputError{fmt.Sprintf("username contains an invisible character (%U)", r)}
		}
	}
	// Every character is fine alone, so their combination is what breaks a
	// rule (right-to-left text mixed with left-to-right, for example).
	return &InputError{"username mixes characters in a way usernames may not (RFC 8265)"}
}

// lookupKey is the key a name is looked up by: its profile key, or, for a
// name the profile refuses, "" (which no row has), so only the lower(username)
// match of a legacy row can find it.
func lookupKey(name string) string {
	u, err := PrepareUsername(name)
	if err != nil {
		return ""
	}
	return u.Key
}
