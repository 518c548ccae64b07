package cli

import (
	"fmt"
	"strings"
	"time"
	"unicode"
)

// count is "1 session", "2 sessions".
func count[N int | int64](n N, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// formatTime shows times in UTC, so the tables read the same wherever the
// command runs.
func formatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// printable makes text from the database safe to print in a table: control
// and formatting characters, which could move the cursor, recolour or reorder
// the terminal or break the columns (a User-Agent is whatever the browser
// sent), become '?', and empty text becomes "-".
func printable(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return '?'
		}
		return r
	}, s)
}
