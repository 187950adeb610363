package app

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/config"
)

// analyticsNextVersion is the npm package of Segment's analytics.js the
// browser test loads (fetched with npm at test time, never from a CDN).
const analyticsNextVersion = "1.84.3"

// analyticsJS returns the directory of analytics-next's browser bundles
// (dist/umd), packed by npm into a cache directory once.
func analyticsJS(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	require.NoError(t, err)
	dir := filepath.Join(cache, "huabu-test", "analytics-next-"+analyticsNextVersion)
	umd := filepath.Join(dir, "package", "dist", "umd")
	if _, err := os.Stat(filepath.Join(umd, "index.js")); err == nil {
		return umd
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		needTool(t, "npm")
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	out, err := exec.Command(npm, "pack", "--pack-destination", dir, "@segment/analytics-next@"+analyticsNextVersion).CombinedOutput()
	require.NoError(t, err, string(out))
	f, err := os.Open(filepath.Join(dir, "segment-analytics-next-"+analyticsNextVersion+".tgz"))
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		name := filepath.Clean(h.Name)
		if h.Typeflag != tar.TypeReg || !strings.HasPrefix(name, "package/dist/umd/") || !strings.HasSuffix(name, ".js") {
			continue
		}
		dst := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(dst, b, 0o644))
	}
	return umd
}

// needTool skips without a tool, except in CI, where .ci/run installs it.
func needTool(t *testing.T, name string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing; .ci/run installs it", name)
	}
	t.Skipf("%s is not installed (apt-get install chromium npm)", name)
}

const browserPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>shop</title>
<script src="/ajs/index.js"></script></head>
<body><script>
(async () => {
  try {
    const [analytics] = await AnalyticsNext.AnalyticsBrowser.load(
      {writeKey: "browser-write-key", cdnURL: location.origin,
       cdnSettings: {integrations: {"Segment.io": {apiKey: "browser-write-key", apiHost: "%s/v1", protocol: "http"}}}},
      {disableClientPersistence: true});
    await analytics.identify("web-user-1", {name: "网页用户"});
    await analytics.track("viewed_product", {sku: "sku-42"});
    await analytics.page();
    // The answer is readable from this origin (CORS), as analytics.js needs to see failures.
    const res = await fetch("http://%s/v1/t", {method: "POST", headers: {"Content-Type": "text/plain"},
      body: JSON.stringify({type: "track", event: "cors_checked", userId: "web-user-1", writeKey: "browser-write-key"})});
    const answer = await res.json();
    document.title = answer.success ? "sent" : "answer: " + JSON.stringify(answer);
  } catch (e) {
    document.title = "error: " + e;
  }
})();
</script></body></html>`

// TestAnalyticsJSInBrowser: a page on another origin loads Segment's
// analytics.js (the npm package, served locally) with Huabu as its API
// host, in headless Chromium; its identify, track and page arrive.
func TestAnalyticsJSInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal and Chromium")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		needTool(t, "chromium")
	}
	umd := analyticsJS(t)

	mux := http.NewServeMux()
	mux.Handle("/ajs/", http.StripPrefix("/ajs/", http.FileServer(http.Dir(umd))))
	// Bundles analytics.js loads on demand come from cdnURL, here the page's own server.
	mux.Handle("/analytics-next/bundles/", http.StripPrefix("/analytics-next/bundles/", http.FileServer(http.Dir(umd))))
	var huabuHost string
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, browserPage, huabuHost, huabuHost)
	})
	page := httptest.NewServer(mux)
	defer page.Close()

	dir := t.TempDir()
	text := fmt.Sprintf(`canvases: ./canvases
http:
  listen: 127.0.0.1:0
  write_keys: [browser-write-key]
  cors_origins: [%q]
profile: {attributes: {name: string}}
`, page.URL)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "canvases"), 0o755))
	cfg, err := config.Parse(filepath.Join(dir, "huabu.yaml"), dir, []byte(text))
	require.NoError(t, err)
	app := startAppIn(t, cfg, dir)
	huabuHost = app.HTTPAddr()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.Flag("disable-background-networking", true),
		// Nothing leaves the machine: every other host fails to resolve.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(page.URL+"/"))) // the first Run starts the browser: no timeout on it
	pctx, pcancel := context.WithTimeout(ctx, 60*time.Second)
	defer pcancel()
	_, err = chromedp.Run(pctx, chromedp.Poll[bool](`document.title != "shop"`, chromedp.WithPollingTimeout(50*time.Second)))
	require.NoError(t, err)
	title, err := chromedp.Run(pctx, chromedp.Title())
	require.NoError(t, err)
	require.Equal(t, "sent", title)

	require.NoError(t, app.WaitIngested(ctx))
	evs, err := app.Store().UserEvents(ctx, "web-user-1")
	require.NoError(t, err)
	kinds := map[string]int{}
	for _, e := range evs {
		kinds[e.Type+":"+e.Name]++
	}
	require.Equal(t, 1, kinds["track:viewed_product"], "%v", kinds)
	require.Equal(t, 1, kinds["page:page"], "%v", kinds)
	require.Equal(t, 1, kinds["identify:"], "%v", kinds)
	require.Equal(t, 1, kinds["track:cors_checked"], "%v", kinds)
	p, err := app.Store().ProfileByID(ctx, "web-user-1")
	require.NoError(t, err)
	require.Contains(t, string(p.Doc), "网页用户")
}
