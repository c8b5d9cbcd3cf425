package stomp

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tandemmq/tandem/internal/testenv"
)

// Process tests: `tandem run` as a real process, driven by the third-party
// STOMP clients the test setup installs (scripts/test-services): Debian's
// python3-stomp and npm's @stomp/stompjs with @stomp/tcp-wrapper. Each
// skips with a message when its client is missing, and fails in CI.

func TestMain(m *testing.M) { testenv.Main(m) }

func missing(t *testing.T, what string) {
	t.Helper()
	msg := what + " not installed; run `make test` (scripts/test-services installs it)"
	if testenv.InCI() {
		t.Fatal("CI=true: " + msg)
	}
	t.Skip(msg)
}

// python returns Debian's python3 with stomp.py importable.
func python(t *testing.T) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import stomp").Run(); err != nil {
		missing(t, "python3-stomp (Debian)")
	}
	return py
}

// nodePath returns the node_modules directory holding @stomp/stompjs and
// @stomp/tcp-wrapper, and node itself.
func nodePath(t *testing.T) (node, modules string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		missing(t, "node")
	}
	modules = os.Getenv("TANDEM_TEST_NODE_PATH")
	if modules == "" {
		root, err := testenv.ModuleRoot()
		if err != nil {
			t.Fatal(err)
		}
		modules = filepath.Join(root, ".scratch", "npm", "node_modules")
	}
	for _, p := range []string{"@stomp/stompjs/package.json", "@stomp/tcp-wrapper/package.json"} {
		if _, err := os.Stat(filepath.Join(modules, p)); err != nil {
			missing(t, "npm packages @stomp/stompjs and @stomp/tcp-wrapper (in "+modules+")")
		}
	}
	return node, modules
}

// startBroker runs `tandem run` on data, listening on addr with the given
// acceptor parameters, and waits until it accepts connections.
func startBroker(t *testing.T, data, addr, params string) *testenv.Process {
	t.Helper()
	bin := testenv.BuildTandem(t)
	url := "tcp://" + addr
	if params != "" {
		url += "?" + params
	}
	p := testenv.Start(t, "broker", bin, "run", "--data", data, "--listen", url, "--http", testenv.FreeAddr(t))
	testenv.WaitListening(t, p, addr, 60*time.Second)
	return p
}

// clientCmd is a client process: python or node running script with the
// broker's address in STOMP_HOST/STOMP_PORT.
func clientCmd(t *testing.T, lang, script, addr string, args ...string) *exec.Cmd {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	dir := testenv.TempDir(t, lang)
	var cmd *exec.Cmd
	switch lang {
	case "python":
		py := python(t)
		path := filepath.Join(dir, "client.py")
		if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command(py, append([]string{"-u", path}, args...)...)
	case "javascript":
		node, modules := nodePath(t)
		path := filepath.Join(dir, "client.js")
		if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command(node, append([]string{path}, args...)...)
		cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	default:
		t.Fatalf("no language %q", lang)
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "STOMP_HOST="+host, "STOMP_PORT="+port)
	cmd.Dir = dir
	return cmd
}

// runClient runs a client to its end (at most timeout) and returns its
// output; a non-zero exit fails the test.
func runClient(t *testing.T, name string, cmd *exec.Cmd, timeout time.Duration) string {
	t.Helper()
	p := testenv.StartCmd(t, name, cmd)
	code, err := p.Wait(timeout)
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, p.Tail(30))
	}
	if code != 0 {
		t.Fatalf("%s exited %d:\n%s", name, code, p.Tail(30))
	}
	return p.Log()
}

// docExamples returns the fenced code blocks of docs/protocols.md by
// language.
func docExamples(t *testing.T) map[string]string {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "docs", "protocols.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range regexp.MustCompile("(?s)```(python|javascript)\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		out[m[1]] = m[2]
	}
	return out
}

// TestDocsExamples runs the Python and JavaScript examples of
// docs/protocols.md against a broker process: each sends 100 durable
// messages with receipts and receives them with acks.
func TestDocsExamples(t *testing.T) {
	ex := docExamples(t)
	for _, lang := range []string{"python", "javascript"} {
		t.Run(lang, func(t *testing.T) {
			if ex[lang] == "" {
				t.Fatalf("docs/protocols.md has no %s example", lang)
			}
			addr := testenv.FreeAddr(t)
			startBroker(t, testenv.TempDir(t, "data"), addr, "")
			out := runClient(t, lang, clientCmd(t, lang, ex[lang], addr), 120*time.Second)
			if !strings.Contains(out, "received 100") {
				t.Fatalf("%s example printed:\n%s", lang, out)
			}
		})
	}
}

// killScripts are the clients of TestKillBroker. "produce N OUT" sends N
// persistent messages (body = ID) with a receipt each and appends each
// receipted ID to OUT; "consume OUT IDLE" receives with
// client-individual acks, each with a receipt, appends each ID received to
// OUT.recv and each whose ack was receipted to OUT, and stops when the connection drops or nothing
// arrives for IDLE seconds. Both exit 0 when the broker goes away.
var killScripts = map[string]string{
	"python": `
import os, sys, threading, time, stomp

host, port = os.environ["STOMP_HOST"], int(os.environ["STOMP_PORT"])
mode, out = sys.argv[1], open(sys.argv[2], "a", buffering=1)
recv = open(sys.argv[2] + ".recv", "a", buffering=1)

class L(stomp.ConnectionListener):
    def __init__(self, conn):
        self.conn, self.gone, self.last = conn, threading.Event(), time.time()
        self.acks, self.lock = {}, threading.Lock()
    def on_disconnected(self):
        print("disconnected")
        self.gone.set()
    def on_error(self, frame):
        print("ERROR", frame.headers.get("message"), frame.body)
    def on_receipt(self, frame):
        rid = frame.headers["receipt-id"]
        if mode == "produce":
            out.write(rid + "\n")
        else:
            with self.lock:
                mid = self.acks.pop(rid, None)
            if mid is not None:
                out.write(mid + "\n")
    def on_message(self, frame):
        recv.write(frame.body + "\n")
        self.last = time.time()
        rid = "a" + frame.headers["ack"]
        with self.lock:
            self.acks[rid] = frame.body
        try:
            self.conn.ack(frame.headers["ack"], receipt=rid)
        except Exception:
            self.gone.set()

conn = stomp.Connection12([(host, port)], reconnect_attempts_max=1)
l = L(conn)
conn.set_listener("", l)
conn.connect(wait=True)
if mode == "produce":
    for i in range(int(sys.argv[3])):
        if l.gone.is_set():
            break
        try:
            conn.send("kill", "m%d" % i, headers={"persistent": "true", "receipt": "m%d" % i})
        except Exception:
            break
        time.sleep(0.001)
    l.gone.wait(60)
else:
    idle = float(sys.argv[3])
    conn.subscribe("kill", id="1", ack="client-individual")
    while not l.gone.is_set() and time.time() - l.last < idle:
        time.sleep(0.1)
    if not l.gone.is_set():
        conn.disconnect(receipt="bye")
`,
	"javascript": `
const { Client } = require('@stomp/stompjs');
const { TCPWrapper } = require('@stomp/tcp-wrapper');
const fs = require('fs');
const [mode, outPath, arg] = process.argv.slice(2);
const out = fs.openSync(outPath, 'a');
const recv = fs.openSync(outPath + '.recv', 'a');
const client = new Client({
  webSocketFactory: () => new TCPWrapper(process.env.STOMP_HOST, Number(process.env.STOMP_PORT)),
  reconnectDelay: 0,
});
const end = (why) => {
  if (why) console.log(why);
  fs.closeSync(out);
  process.exit(0);
};
client.onWebSocketClose = () => end('connection closed');
client.onStompError = (f) => end('ERROR ' + f.headers.message + ' ' + f.body);
client.onConnect = async () => {
  if (mode === 'produce') {
    for (let i = 0; i < Number(arg); i++) {
      const id = 'm' + i;
      client.watchForReceipt(id, () => fs.writeSync(out, id + '\n'));
      try {
        client.publish({ destination: 'kill', body: id, headers: { persistent: 'true', receipt: id } });
      } catch (e) { return; }
      await new Promise((r) => setTimeout(r, 1));
    }
    return; // wait for the broker to go away
  }
  let last = Date.now();
  client.subscribe('kill', (m) => {
    fs.writeSync(recv, m.body + '\n');
    last = Date.now();
    const rid = 'a' + m.headers.ack;
    client.watchForReceipt(rid, () => fs.writeSync(out, m.body + '\n'));
    m.ack({ receipt: rid });
  }, { ack: 'client-individual' });
  const timer = setInterval(() => {
    if (Date.now() - last > Number(arg) * 1000) {
      clearInterval(timer);
      client.deactivate().then(() => end('idle'));
    }
  }, 100);
};
client.activate();
`,
}

func readIDs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// TestKillBroker: with a client producing durable messages and another
// consuming them with receipted acks, the broker is SIGKILLed at a random
// point and restarted on its data; a drain then finds every receipted
// send exactly once in acks-before-the-kill plus the drain, and nothing
// whose ack was receipted comes again.
func TestKillBroker(t *testing.T) {
	for _, lang := range []string{"python", "javascript"} {
		t.Run(lang, func(t *testing.T) {
			script := killScripts[lang]
			addr := testenv.FreeAddr(t)
			data := testenv.TempDir(t, "data")
			broker := startBroker(t, data, addr, "")
			dir := t.TempDir()
			sent, acked, drained := filepath.Join(dir, "sent"), filepath.Join(dir, "acked"), filepath.Join(dir, "drained")
			const n = 3000
			prod := testenv.StartCmd(t, "producer", clientCmd(t, lang, script, addr, "produce", sent, fmt.Sprint(n)))
			cons := testenv.StartCmd(t, "consumer", clientCmd(t, lang, script, addr, "consume", acked, "60"))
			target := 200 + rand.IntN(800)
			deadline := time.Now().Add(120 * time.Second)
			for len(readIDs(t, sent)) < target || len(readIDs(t, acked)) < target/4 {
				if time.Now().After(deadline) || prod.Exited() || cons.Exited() {
					t.Fatalf("before the kill: %d sends and %d acks receipted\nproducer:\n%s\nconsumer:\n%s",
						len(readIDs(t, sent)), len(readIDs(t, acked)), prod.Tail(20), cons.Tail(20))
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := broker.Kill(); err != nil {
				t.Fatal(err)
			}
			for _, p := range []*testenv.Process{prod, cons} {
				if _, err := p.Wait(60 * time.Second); err != nil {
					t.Fatalf("%s did not end after the broker died: %v\n%s", p.Name, err, p.Tail(20))
				}
			}
			startBroker(t, data, addr, "")
			runClient(t, "drain", clientCmd(t, lang, script, addr, "consume", drained, "3"), 120*time.Second)

			s, a, d := readIDs(t, sent), readIDs(t, acked), readIDs(t, drained)
			recv := map[string]bool{} // delivered before the kill (an ack without a receipt may be durable)
			for _, id := range readIDs(t, acked+".recv") {
				recv[id] = true
			}
			t.Logf("%s: %d sends receipted, %d received and %d acks receipted before the kill, %d drained after",
				lang, len(s), len(recv), len(a), len(d))
			seen := map[string]string{}
			for _, id := range a {
				if seen[id] != "" {
					t.Errorf("%s acked twice before the kill", id)
				}
				seen[id] = "acked"
			}
			for _, id := range d {
				switch seen[id] {
				case "acked":
					t.Errorf("%s: its ack was receipted, yet it was delivered again after the restart", id)
				case "drained":
					t.Errorf("%s drained twice", id)
				}
				if !strings.HasPrefix(id, "m") {
					t.Errorf("drained %q, which was never sent", id)
				}
				seen[id] = "drained"
			}
			lost := 0
			for _, id := range s {
				if seen[id] == "" && !recv[id] {
					lost++
					if lost <= 10 {
						t.Errorf("%s: its send was receipted, and it was never consumed", id)
					}
				}
			}
			if lost > 0 {
				t.Errorf("%d receipted sends lost", lost)
			}
		})
	}
}

// TestHostileClientsProcess: against a broker process, malformed frames
// get an ERROR and a close, the broker survives, and a real client keeps
// working alongside.
func TestHostileClientsProcess(t *testing.T) {
	addr := testenv.FreeAddr(t)
	broker := startBroker(t, testenv.TempDir(t, "data"), addr, "protocols=CORE,STOMP,MQTT")
	good := connect(t, addr)
	good.send("SUBSCRIBE", []string{"id:0", "destination:alive", "receipt:s"}, "")
	good.expect("RECEIPT")
	for name, frames := range map[string]string{
		"wrong header":       "SEND\ndestination\n\nx\x00",
		"bad content-length": "SEND\ndestination:a\ncontent-length:-5\n\nx\x00",
		// Above the largest large message (1 PiB): a content-length of
		// 100 GB is a large message now, streamed as its bytes come.
		"oversized frame": "SEND\ndestination:a\ncontent-length:99999999999999999\n\n",
		"oversized body":  "SEND\ndestination:a\n\n" + strings.Repeat("x", 2<<20),
		"garbage command": "\x01\x02\x03\n\n\x00",
	} {
		r := connect(t, addr)
		r.write(frames)
		if e := r.expectError(); e.Value("message") == "" {
			t.Errorf("%s: ERROR without a message: %v", name, e.Headers)
		}
		good.send("SEND", []string{"destination:alive", "receipt:g"}, name)
		good.expect("RECEIPT")
		if m := good.expect("MESSAGE"); string(m.Body) != name {
			t.Fatalf("good client got %q", m.Body)
		}
	}
	// A client that never reads a backlog, then goes: the broker lives on.
	lazy := connect(t, addr)
	lazy.send("SUBSCRIBE", []string{"id:0", "destination:alive2"}, "")
	for i := 0; i < 200; i++ {
		good.send("SEND", []string{"destination:alive2"}, strings.Repeat("y", 32<<10))
	}
	good.send("SEND", []string{"destination:alive", "receipt:g"}, "end")
	good.expect("RECEIPT")
	good.expect("MESSAGE")
	// Bytes of no protocol: closed without an answer.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, _ := nc.Read(make([]byte, 64)); n > 0 {
		t.Fatalf("an HTTP request got %d bytes of answer", n)
	}
	nc.Close()
	if broker.Exited() {
		t.Fatalf("the broker died:\n%s", broker.Tail(30))
	}
	ex := docExamples(t)["python"]
	out := runClient(t, "python", clientCmd(t, "python", ex, addr), 120*time.Second)
	if !strings.Contains(out, "received 100") {
		t.Fatalf("after the hostile clients the example printed:\n%s", out)
	}
	if !strings.Contains(broker.Log(), "MQTT") {
		t.Errorf("the unknown protocol in protocols= was not logged:\n%s", broker.Tail(20))
	}
}
