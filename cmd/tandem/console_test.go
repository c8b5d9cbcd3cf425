package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandemmq/tandem/internal/cdp"
	"github.com/tandemmq/tandem/internal/testenv"
)

// chromium returns the path of a Chromium to drive; without one the test
// is skipped, or fails under CI (scripts/test-services installs Debian's
// chromium).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium on PATH: the console's browser test needs Debian's chromium (scripts/test-services installs it)"
	if testenv.InCI() {
		t.Fatal("CI=true: " + msg)
	}
	t.Skip(msg)
	return ""
}

// waitFor is a page expression that resolves once cond (a JavaScript
// expression) is true, watching the DOM rather than polling from here.
func waitFor(cond string) string {
	return `new Promise((resolve) => {
		const check = () => { try { if (` + cond + `) { obs.disconnect(); resolve(true); } } catch (e) {} };
		const obs = new MutationObserver(check);
		obs.observe(document.documentElement, { subtree: true, childList: true, characterData: true, attributes: true });
		check();
	})`
}

// TestConsoleInBrowser opens the console of a real broker process in
// headless Chromium: the page loads with no console error, lists the
// broker's queues, and updates when messages arrive. A screenshot is
// kept (in $TANDEM_TEST_ARTIFACTS when set, else the test's directory;
// the path is logged).
// consolePage starts a broker process (with cfg as broker.xml when not
// empty) and a headless Chromium showing its console; it returns the page
// and the broker's client URL.
func consolePage(t *testing.T, ctx context.Context, cfg string) (*cdp.Client, string) {
	t.Helper()
	browserPath := chromium(t)
	bin := testenv.BuildTandem(t)
	addr, httpAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	args := []string{"run", "--data", t.TempDir(), "--listen", "tcp://" + addr, "--http", httpAddr}
	if cfg != "" {
		path := filepath.Join(t.TempDir(), "broker.xml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", path)
	}
	broker := testenv.Start(t, "broker", bin, args...)
	testenv.WaitListening(t, broker, addr, 30*time.Second)
	testenv.WaitListening(t, broker, httpAddr, 30*time.Second)
	url := "tcp://" + addr
	b, err := cdp.Launch(ctx, browserPath, testenv.TempDir(t, "chromium"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	page, err := b.Page(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { page.Close() })
	for _, domain := range []string{"Runtime.enable", "Log.enable", "Page.enable"} {
		if err := page.Call(ctx, domain, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := page.Call(ctx, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}, nil); err != nil {
		t.Fatal(err)
	}
	from := len(page.Events())
	if err := page.Call(ctx, "Page.navigate", map[string]any{"url": "http://" + httpAddr + "/"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := page.WaitEvent(ctx, "Page.loadEventFired", from); err != nil {
		t.Fatal(err)
	}
	return page, url
}

// queueRow is the page expression of the queues table's row of name.
func queueRow(name string) string {
	return `[...document.querySelectorAll("#queues tbody tr")].find((tr) => tr.cells[1] && tr.cells[1].textContent === "` + name + `")`
}

// pageErrors fails t for every console error or warning, exception and
// failed resource the page reported.
func pageErrors(t *testing.T, page *cdp.Client) {
	t.Helper()
	for _, ev := range page.Events() {
		switch ev.Method {
		case "Runtime.exceptionThrown":
			t.Errorf("exception in the page: %s", ev.Params)
		case "Runtime.consoleAPICalled":
			var p struct {
				Type string `json:"type"`
			}
			json.Unmarshal(ev.Params, &p)
			if p.Type == "error" || p.Type == "warning" {
				t.Errorf("console %s: %s", p.Type, ev.Params)
			}
		case "Log.entryAdded":
			var p struct {
				Entry struct {
					Level, Text, URL string
				} `json:"entry"`
			}
			json.Unmarshal(ev.Params, &p)
			if p.Entry.Level == "error" || p.Entry.Level == "warning" {
				t.Errorf("browser log %s: %s (%s)", p.Entry.Level, p.Entry.Text, p.Entry.URL)
			}
		}
	}
}

func TestConsoleInBrowser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	page, url := consolePage(t, ctx, "")
	if code, out, errs := cli(t, queueCmd, "create", "--url", url, "--queue", "console.orders"); code != exitOK {
		t.Fatalf("queue create: %d %s %s", code, out, errs)
	}
	queueRow := queueRow("console.orders")
	// The page has polled /status (console.js counts its polls) and lists
	// the queue.
	if err := page.Evaluate(ctx, waitFor(`Number(document.body.dataset.polls) >= 1 && `+queueRow), nil); err != nil {
		t.Fatalf("the console does not list the queue: %v", err)
	}
	// Read-only without users: no operation is offered.
	var opsShown bool
	if err := page.Evaluate(ctx, `document.getElementById("create-queue").offsetParent !== null || document.querySelectorAll("#queues button").length > 0`, &opsShown); err != nil || opsShown {
		t.Fatalf("operations shown on a broker without users (%v)", err)
	}
	var cluster string
	if err := page.Evaluate(ctx, `document.querySelector("#cluster tbody").textContent`, &cluster); err != nil || !strings.Contains(cluster, "active") {
		t.Fatalf("cluster table %q (%v): want this broker, active", cluster, err)
	}

	// Messages arrive: the queue's depth on the page follows.
	if code := runProducer([]string{"--url", url, "--destination", "queue://console.orders", "--count", "7", "--id-prefix", "C"}); code != exitOK {
		t.Fatalf("producer exit %d", code)
	}
	if err := page.Evaluate(ctx, waitFor(queueRow+`.cells[4].textContent === "7"`), nil); err != nil {
		t.Fatalf("the console does not show the 7 messages: %v", err)
	}
	var journals string
	if err := page.Evaluate(ctx, waitFor(`document.querySelector("#journals tbody").textContent.includes("messages")`)+
		`.then(() => document.querySelector("#journals tbody").textContent)`, &journals); err != nil {
		t.Fatalf("journal table: %v", err)
	}

	var shot struct {
		Data string `json:"data"`
	}
	if err := page.Call(ctx, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &shot); err != nil {
		t.Fatal(err)
	}
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil || len(png) < 1000 {
		t.Fatalf("screenshot: %d bytes, %v", len(png), err)
	}
	artifacts := os.Getenv("TANDEM_TEST_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	} else if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(artifacts, "console.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("console screenshot: %s", path)

	// No console error, no exception, no failed resource (a CDN would be
	// one: the machine the test runs on may be offline).
	pageErrors(t, page)
}

// TestConsoleOperationsInBrowser: on a broker with users the console
// offers operations once signed in; a queue paused from the page is
// paused (as the CLI sees it), and a wrong password signs nobody in.
func TestConsoleOperationsInBrowser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cfg := `<configuration xmlns="urn:activemq"><core xmlns="urn:activemq:core">` +
		`<security><users><user name="admin" password="s3cret" roles="admin"/></users></security>` +
		`</core></configuration>`
	page, url := consolePage(t, ctx, cfg)
	admin := []string{"--url", url, "--user", "admin", "--password", "s3cret"}
	if code, out, errs := cli(t, queueCmd, append([]string{"create", "--queue", "ops.q"}, admin...)...); code != exitOK {
		t.Fatalf("queue create: %d %s %s", code, out, errs)
	}
	row := queueRow("ops.q")
	signIn := func(password string) {
		t.Helper()
		js := `(() => { document.getElementById("login-user").value = "admin";
			document.getElementById("login-pass").value = "` + password + `";
			document.getElementById("login").requestSubmit(); return true; })()`
		if err := page.Evaluate(ctx, waitFor(`!document.getElementById("login").hidden`), nil); err != nil {
			t.Fatalf("no sign-in form: %v", err)
		}
		if err := page.Evaluate(ctx, js, nil); err != nil {
			t.Fatal(err)
		}
	}
	signIn("wrong")
	if err := page.Evaluate(ctx, waitFor(`document.getElementById("error").textContent.includes("sign in failed")`), nil); err != nil {
		t.Fatalf("a wrong password: %v", err)
	}
	signIn("s3cret")
	if err := page.Evaluate(ctx, waitFor(`document.getElementById("auth-state").textContent === "signed in as admin" && `+row+` && `+row+`.querySelector("button")`), nil); err != nil {
		t.Fatalf("signed in: %v", err)
	}
	click := `[...` + row + `.querySelectorAll("button")].find((b) => b.textContent === "pause").click()`
	if err := page.Evaluate(ctx, click, nil); err != nil {
		t.Fatal(err)
	}
	if err := page.Evaluate(ctx, waitFor(row+`.cells[9].textContent === "paused"`), nil); err != nil {
		t.Fatalf("the page does not show the queue paused: %v", err)
	}
	code, out, errs := cli(t, queueCmd, append([]string{"stat", "--queue", "ops.q", "--json"}, admin...)...)
	var qi struct{ Paused bool }
	if code != exitOK || json.Unmarshal([]byte(out), &qi) != nil || !qi.Paused {
		t.Fatalf("queue stat after pausing in the console: %d %s %s", code, out, errs)
	}
	pageErrors(t, page)
}
