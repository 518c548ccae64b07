// Package chromium drives a real, headless Chromium for tests, so the login
// and account pages are tested as a person uses them: typing, clicking,
// following redirects, keeping cookies, going back.
//
// A test starts one browser and opens tabs in it, each in a browser context
// of its own (like an incognito window: its own cookies, storage and cache),
// so tests can run in parallel without seeing each other's sessions:
//
//	b := chromium.Start(t)           // stopped when t and its subtests end
//	b := chromium.Start(t, chromium.HostResolverRules("MAP *.example.test 127.0.0.1"))
//	tab := b.NewTab(t)               // closed when t ends
//	tab.Do("open the page", chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#x")))
//	text := chromium.Run(tab, "read the title", chromedp.Title())
//
// The browser is Debian's chromium on PATH (apt-get install chromium), or the
// binary the CHROMIUM environment variable names. Every step has a timeout, so
// a page that never shows what the test waits for fails the test with what it
// was waiting for instead of hanging it.
package chromium

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// EnvPath names the variable that points the tests at another Chromium or
// Chrome binary than the chromium found on PATH.
const EnvPath = "CHROMIUM"

// Timeouts are generous because the race detector and a shared, busy
// machine slow the site and the browser down; they only bound a hang.
const (
	// startTimeout bounds starting the browser process and attaching to it.
	startTimeout = time.Minute
	// StepTimeout bounds one Do or Run of a test: a navigation, a wait for
	// an element, a click.
	StepTimeout = 20 * time.Second
	// tabTimeout bounds a whole tab, so even a step that ignores its own
	// deadline cannot hang the test binary.
	tabTimeout = 3 * time.Minute
)

// errNotFound is one line on purpose, so the reason a test failed is obvious
// in go test output.
var errNotFound = errors.New("chromium: not found on PATH; install it with: apt-get install chromium (or set " + EnvPath + " to a Chromium or Chrome binary)")

// Path returns the browser binary: $CHROMIUM if set, else chromium on PATH.
func Path() (string, error) {
	if p := os.Getenv(EnvPath); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("chromium: %s=%q is not an executable: %w", EnvPath, p, err)
		}
		return path, nil
	}
	path, err := exec.LookPath("chromium")
	if err != nil {
		return "", errNotFound
	}
	return path, nil
}

// options are the allocator's: chromedp's defaults (headless, no first-run
// page, no extensions, a fresh empty --user-data-dir it removes afterwards)
// and the flags that let Chromium run here. Without the ones that turn off
// background networking, component updates, sync and QUIC, Chromium keeps
// opening connections a closed network refuses; --no-sandbox is needed as
// root, and --disable-gpu where there is no GPU. extra come last, so a
// test's own flags add to these or override them.
func options(path string, extra ...chromedp.ExecAllocatorOption) []chromedp.ExecAllocatorOption {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.WindowSize(1280, 800),
	)
	return append(opts, extra...)
}

// HostResolverRules is the flag that makes the browser resolve host names
// as rules say (such as "MAP *.example.test 127.0.0.1", ports kept), so a
// test can serve several host names, each its own site for cookies and
// CSP, from servers on 127.0.0.1 without touching the system's resolver.
func HostResolverRules(rules string) chromedp.ExecAllocatorOption {
	return chromedp.Flag("host-resolver-rules", rules)
}

// Browser is one running Chromium.
type Browser struct {
	ctx context.Context
}

// Start starts a headless Chromium, or fails tb with how to install one,
// with extra flags (such as HostResolverRules) after the usual ones. It is
// stopped when tb ends, after tb's subtests: start it once in a parent
// test and open a tab per subtest, as starting the browser is the slow part.
func Start(tb testing.TB, extra ...chromedp.ExecAllocatorOption) *Browser {
	tb.Helper()
	path, err := Path()
	if err != nil {
		tb.Fatal(err)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), options(path, extra...)...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	tb.Cleanup(func() {
		// Closing the browser context ends the process and waits for it;
		// cancelling the allocator waits until its profile is removed.
		cancel()
		cancelAlloc()
	})

	// The first run binds the browser's life to its context, so it cannot
	// carry a deadline of its own: a timer cancels it instead.
	timer := time.AfterFunc(startTimeout, cancel)
	err = chromedp.Do(ctx)
	if !timer.Stop() {
		tb.Fatalf("chromium: %s did not start within %s", path, startTimeout)
	}
	if err != nil {
		tb.Fatalf("chromium: starting %s: %v", path, err)
	}
	return &Browser{ctx: ctx}
}

// Tab is one page in a browser context of its own.
type Tab struct {
	tb  testing.TB
	ctx context.Context
}

// NewTab opens a tab in a new browser context, with no cookies, storage or
// cache shared with any other tab; it is closed when tb ends.
func (b *Browser) NewTab(tb testing.TB) *Tab {
	tb.Helper()
	deadline, cancelDeadline := context.WithTimeout(b.ctx, tabTimeout)
	ctx, cancel := chromedp.NewContext(deadline, chromedp.WithNewBrowserContext())
	tab := &Tab{tb: tb, ctx: ctx}
	tb.Cleanup(func() {
		if tb.Failed() {
			tab.logPage()
		}
		cancel()
		cancelDeadline()
	})
	// The first run creates the browser context and the tab, and binds the
	// tab's life to its context: a timer bounds it, as in Start. Later steps
	// each get a deadline of their own, derived from this context.
	timer := time.AfterFunc(StepTimeout, cancel)
	err := chromedp.Do(ctx)
	if !timer.Stop() {
		tb.Fatalf("chromium: opening a tab took longer than %s", StepTimeout)
	}
	if err != nil {
		tb.Fatalf("chromium: opening a tab in a new browser context: %v", err)
	}
	return tab
}

// logPage logs where a failed test's tab was and the text it showed.
func (tab *Tab) logPage() {
	ctx, cancel := context.WithTimeout(tab.ctx, 5*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		tab.tb.Logf("chromium: the tab's address is unknown: %v", err)
		return
	}
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		text = "(unknown: " + err.Error() + ")"
	}
	tab.tb.Logf("chromium: the tab was at %s, showing:\n%s", loc, text)
}

// Do runs actions within StepTimeout and fails the test, saying what was
// being done, if one fails.
func (tab *Tab) Do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tab.tb.Helper()
	Run(tab, what, chromedp.Steps(actions...))
}

// Run runs an action within StepTimeout and returns its value; it fails the
// test, saying what was being done, if the action fails.
func Run[T any](tab *Tab, what string, action chromedp.Action[T]) T {
	tab.tb.Helper()
	v, err := Try(tab, action)
	if err != nil {
		tab.tb.Fatalf("%s: %v", what, err)
	}
	return v
}

// Try runs an action within StepTimeout and returns its value and error,
// for a step whose failure the test looks at itself.
func Try[T any](tab *Tab, action chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(tab.ctx, StepTimeout)
	defer cancel()
	return chromedp.Run(ctx, action)
}

// Context is the tab's chromedp context, for calling protocol commands with
// chromedp.Call; derive a context with a timeout from it for each call.
func (tab *Tab) Context() context.Context { return tab.ctx }

// Console is what a tab's pages wrote to the console (calls of the console
// API, uncaught exceptions, and the browser's own messages, such as a
// Content Security Policy's refusals), from when WatchConsole was called.
type Console struct {
	mu       sync.Mutex
	messages []chromedp.ConsoleMessage
}

// WatchConsole starts keeping the tab's console messages, until the tab is
// closed; call it before the steps whose messages matter.
func (tab *Tab) WatchConsole() *Console {
	c := &Console{}
	// Console subscribes now, so nothing the next step causes is missed;
	// the loop ends when the tab's context does.
	messages := chromedp.Console(tab.ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			c.mu.Lock()
			c.messages = append(c.messages, m)
			c.mu.Unlock()
		}
	}()
	return c
}

// Messages are the messages kept so far, oldest first.
func (c *Console) Messages() []chromedp.ConsoleMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]chromedp.ConsoleMessage(nil), c.messages...)
}

// ColorScheme makes the page see prefers-color-scheme as scheme ("light" or
// "dark"), as a system set to that appearance does.
func ColorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	})
}

// pngSignature starts every PNG file.
var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// Screenshot saves the whole page, beyond the viewport too, as a PNG file
// at path, creating its folder, and returns the image.
func (tab *Tab) Screenshot(path string) []byte {
	tab.tb.Helper()
	img := Run(tab, "take a screenshot for "+filepath.Base(path), chromedp.FullScreenshot(100)) // 100: PNG
	if !bytes.HasPrefix(img, pngSignature) {
		tab.tb.Fatalf("the screenshot for %s is not a PNG image", filepath.Base(path))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tab.tb.Fatal(err)
	}
	if err := os.WriteFile(path, img, 0o644); err != nil {
		tab.tb.Fatal(err)
	}
	return img
}

// IsPNG reports whether the file at path is a non-empty PNG image.
func IsPNG(path string) bool {
	data, err := os.ReadFile(path)
	return err == nil && len(data) > len(pngSignature) && bytes.HasPrefix(data, pngSignature)
}
