package web

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxRawUserAgent is how many characters of an unrecognised user agent
// DescribeUserAgent keeps.
const maxRawUserAgent = 40

// A uaRule recognises a browser, operating system or tool by a token in the
// user agent. Rules are tried in order, so a token that other browsers also
// send ("Chrome/" in Edge's user agent, "Safari/" in Chrome's) comes after
// the more specific ones.
type uaRule struct {
	token string // case-sensitive substring
	name  string
}

var browserRules = []uaRule{
	{"Edg/", "Edge"}, // Chromium-based Edge on the desktop
	{"EdgA/", "Edge"},
	{"EdgiOS/", "Edge"},
	{"Edge/", "Edge"}, // EdgeHTML Edge
	{"OPR/", "Opera"},
	{"OPT/", "Opera"},
	{"Opera", "Opera"},
	{"SamsungBrowser/", "Samsung Internet"},
	{"YaBrowser/", "Yandex Browser"},
	{"Vivaldi/", "Vivaldi"},
	{"DuckDuckGo/", "DuckDuckGo"},
	{"Firefox/", "Firefox"},
	{"FxiOS/", "Firefox"},
	{"CriOS/", "Chrome"},
	{"Chromium/", "Chromium"},
	{"Chrome/", "Chrome"},
	{"MSIE ", "Internet Explorer"},
	{"Trident/", "Internet Explorer"},
	{"Safari/", "Safari"},
}

var osRules = []uaRule{
	{"iPhone", "iPhone"},
	{"iPad", "iPad"},
	{"iPod", "iPod"},
	{"Android", "Android"},
	{"CrOS", "ChromeOS"},
	{"Windows", "Windows"},
	{"Macintosh", "macOS"},
	{"Mac OS X", "macOS"},
	{"FreeBSD", "FreeBSD"},
	{"OpenBSD", "OpenBSD"},
	{"Linux", "Linux"},
	{"X11", "Linux"},
}

// toolRules match programs by the product token their user agent starts
// with, compared without regard to case.
var toolRules = []uaRule{
	{"curl/", "curl"},
	{"wget/", "Wget"},
	{"httpie/", "HTTPie"},
	{"python-requests/", "Python Requests"},
	{"python-httpx/", "Python HTTPX"},
	{"python-urllib/", "Python urllib"},
	{"go-http-client/", "Go HTTP client"},
	{"postmanruntime/", "Postman"},
	{"insomnia/", "Insomnia"},
	{"okhttp/", "OkHttp"},
	{"axios/", "axios"},
	{"node-fetch", "node-fetch"},
	{"java/", "Java"},
	{"libwww-perl/", "Perl LWP"},
}

// DescribeUserAgent turns a User-Agent header into a short description of
// the device for people, such as "Firefox on Linux", "Chrome on Android",
// "Safari on iPhone", "Edge on Windows" or "curl". An empty user agent is
// "Unknown device"; one it does not recognise is returned as it is, with
// control characters and runs of spaces removed, cut to about 40
// characters.
func DescribeUserAgent(ua string) string {
	ua = strings.TrimSpace(ua)
	if ua == "" {
		return "Unknown device"
	}
	lower := strings.ToLower(ua)
	for _, r := range toolRules {
		if strings.HasPrefix(lower, r.token) {
			return r.name
		}
	}
	browser := match(ua, browserRules)
	if browser == "Safari" && (!strings.Contains(ua, "Version/") || strings.Contains(ua, "Android")) {
		// Apps, bots and old Android browsers that merely claim to be
		// compatible with Safari: Safari itself always sends Version/.
		browser = ""
	}
	os := ""
	if strings.HasPrefix(ua, "Mozilla/") || strings.HasPrefix(ua, "Opera/") || browser != "" {
		os = match(ua, osRules)
	}
	switch {
	case browser != "" && os != "":
		return browser + " on " + os
	case browser != "":
		return browser
	case os != "":
		return "Browser on " + os
	}
	return truncateUserAgent(ua)
}

func match(ua string, rules []uaRule) string {
	for _, r := range rules {
		if strings.Contains(ua, r.token) {
			return r.name
		}
	}
	return ""
}

// truncateUserAgent makes an unrecognised user agent presentable: valid
// UTF-8, no control characters, single spaces, at most maxRawUserAgent
// characters (the last being "…" when it was cut).
func truncateUserAgent(ua string) string {
	ua = strings.ToValidUTF8(ua, "\uFFFD")
	ua = strings.Join(strings.FieldsFunc(ua, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
	if utf8.RuneCountInString(ua) <= maxRawUserAgent {
		return ua
	}
	runes := []rune(ua)
	return strings.TrimRightFunc(string(runes[:maxRawUserAgent-1]), unicode.IsSpace) + "…"
}
