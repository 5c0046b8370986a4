// Package browsertest starts headless Chromium for the tests that drive
// redcast's pages in a browser (web/, examples/).
package browsertest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is where Debian (and our CI) installs Chromium.
const ChromiumPath = "/usr/bin/chromium"

// Start starts headless Chromium and returns a context whose children
// open tabs in it. The browser stops when the test ends; the test fails
// when Chromium is missing.
func Start(t testing.TB) context.Context {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Fatalf("the browser tests need Chromium at %s (Debian: apt-get install chromium): %v", ChromiumPath, err)
	}
	dataDir := t.TempDir()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(ChromiumPath),
		chromedp.UserDataDir(dataDir),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		// Every tab must run its timers on time, visible or not.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
	)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		// Chromium's helpers can write to the profile for a moment after
		// the browser exits; empty it so that TempDir's cleanup succeeds.
		deadline := time.Now().Add(5 * time.Second)
		for os.RemoveAll(dataDir) != nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	})
	// Start the browser without a deadline: a deadline here would stop it.
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("starting Chromium at %s: %v", ChromiumPath, err)
	}
	return browserCtx
}
