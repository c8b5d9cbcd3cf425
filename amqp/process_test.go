package amqp

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/tandemmq/tandem/internal/testenv"
	"github.com/tandemmq/tandem/server"
)

// Process tests: `tandem run` as a real process, driven by the third-party
// AMQP clients the test setup installs (scripts/test-services): Debian's
// python3-qpid-proton, npm's rhea, and go-amqp (a Go test dependency).
// Each skips with a message when its client is missing, and fails in CI.

func TestMain(m *testing.M) { testenv.Main(m) }

func missing(t *testing.T, what string) {
	t.Helper()
	msg := what + " not installed; run `make test` (scripts/test-services installs it)"
	if testenv.InCI() {
		t.Fatal("CI=true: " + msg)
	}
	t.Skip(msg)
}

// python returns Debian's python3 with proton importable.
func python(t *testing.T) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import proton").Run(); err != nil {
		missing(t, "python3-qpid-proton (Debian)")
	}
	return py
}

// nodeModules returns node and the node_modules directory holding rhea.
func nodeModules(t *testing.T) (node, modules string) {
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
	if _, err := os.Stat(filepath.Join(modules, "rhea", "package.json")); err != nil {
		missing(t, "npm package rhea (in "+modules+")")
	}
	return node, modules
}

// startBroker runs `tandem run` on data listening on addr, and waits until
// it accepts connections.
func startBroker(t *testing.T, data, addr string) *testenv.Process {
	t.Helper()
	bin := testenv.BuildTandem(t)
	p := testenv.Start(t, "broker", bin, "run", "--data", data, "--listen", "tcp://"+addr, "--http", testenv.FreeAddr(t))
	testenv.WaitListening(t, p, addr, 60*time.Second)
	return p
}

// clientCmd is a client process running script with AMQP_URL set.
func clientCmd(t *testing.T, lang, script, addr string, args ...string) *exec.Cmd {
	t.Helper()
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
		cmd.Env = os.Environ()
	case "javascript":
		node, modules := nodeModules(t)
		path := filepath.Join(dir, "client.js")
		if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command(node, append([]string{path}, args...)...)
		cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	case "go":
		cmd = goProgram(t, dir, script)
		cmd.Args = append(cmd.Args, args...)
		cmd.Env = os.Environ()
	default:
		t.Fatalf("no language %q", lang)
	}
	cmd.Env = append(cmd.Env, "AMQP_URL=amqp://"+addr)
	cmd.Dir = dir
	return cmd
}

// goProgram builds a Go program using go-amqp, in a module of its own that
// takes go-amqp from the module cache (this module's tests use it, so it
// is there), and returns the command running it.
func goProgram(t *testing.T, dir, src string) *exec.Cmd {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(sum), "\n") {
		if strings.HasPrefix(l, "github.com/Azure/go-amqp ") {
			lines = append(lines, l)
		}
	}
	ver := strings.Fields(lines[0])[1]
	ver = strings.TrimSuffix(ver, "/go.mod")
	mod := "module example\n\ngo 1.25\n\nrequire github.com/Azure/go-amqp " + ver + "\n"
	for name, content := range map[string]string{"go.mod": mod, "go.sum": strings.Join(lines, "\n") + "\n", "main.go": src} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	build := exec.Command("go", "build", "-o", "example", ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the Go example: %v\n%s", err, out)
	}
	return exec.Command(filepath.Join(dir, "example"))
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

// docExamples returns the fenced code blocks of docs/amqp.md by language.
func docExamples(t *testing.T) map[string]string {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "docs", "amqp.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range regexp.MustCompile("(?s)```(python|javascript|go)\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		out[m[1]] = m[2]
	}
	return out
}

// TestDocsExamples runs the Python, JavaScript and Go examples of
// docs/amqp.md against a broker process: each sends 100 durable messages
// and receives them, and the queue is empty afterwards.
func TestDocsExamples(t *testing.T) {
	ex := docExamples(t)
	for _, lang := range []string{"python", "javascript", "go"} {
		t.Run(lang, func(t *testing.T) {
			if ex[lang] == "" {
				t.Fatalf("docs/amqp.md has no %s example", lang)
			}
			addr := testenv.FreeAddr(t)
			startBroker(t, testenv.TempDir(t, "data"), addr)
			out := runClient(t, lang, clientCmd(t, lang, ex[lang], addr), 180*time.Second)
			if !strings.Contains(out, "received 100") {
				t.Fatalf("%s example printed:\n%s", lang, out)
			}
		})
	}
}

// killScripts are the clients of TestKillBroker. "produce N OUT" sends N
// durable messages (body = ID) with at most 50 unsettled and appends each
// ID whose send the broker settled as accepted to OUT; "consume OUT IDLE"
// receives, appends each ID to OUT and accepts it, and stops when the
// connection drops or nothing arrives for IDLE seconds. Both exit 0 when
// the broker goes away.
var killScripts = map[string]string{
	"python": `
import os, sys
from proton import Message
from proton.handlers import MessagingHandler
from proton.reactor import Container

url = os.environ["AMQP_URL"]
mode, out = sys.argv[1], open(sys.argv[2], "a", buffering=1)

class Produce(MessagingHandler):
    def __init__(self, n):
        super().__init__()
        self.n, self.next, self.ids = n, 0, {}
    def on_start(self, event):
        self.conn = event.container.connect(url, reconnect=False)
        self.sender = event.container.create_sender(self.conn, "kill")
    def on_sendable(self, event):
        while event.sender.credit and self.next < self.n and len(self.ids) < 50:
            d = event.sender.send(Message(body="m%d" % self.next, durable=True))
            self.ids[d] = "m%d" % self.next
            self.next += 1
    def on_accepted(self, event):
        out.write(self.ids.pop(event.delivery) + "\n")
        self.on_sendable(event)
    def on_transport_error(self, event):
        print("transport error", event.transport.condition)
        event.container.stop()
    def on_connection_error(self, event):
        print("connection error")
        event.container.stop()

class Consume(MessagingHandler):
    def __init__(self, idle):
        super().__init__(prefetch=100, auto_accept=False)
        self.idle = idle
    def on_start(self, event):
        self.conn = event.container.connect(url, reconnect=False)
        event.container.create_receiver(self.conn, "kill")
        self.timer = event.container.schedule(self.idle, self)
    def on_message(self, event):
        out.write(event.message.body + "\n")
        self.accept(event.delivery)
        self.timer.cancel()
        self.timer = event.container.schedule(self.idle, self)
    def on_timer_task(self, event):
        print("idle")
        self.conn.close()
    def on_transport_error(self, event):
        print("transport error", event.transport.condition)
        event.container.stop()

h = Produce(int(sys.argv[3])) if mode == "produce" else Consume(float(sys.argv[3]))
Container(h).run()
`,
	"javascript": `
const rhea = require('rhea');
const fs = require('fs');
const [mode, outPath, arg] = process.argv.slice(2);
const out = fs.openSync(outPath, 'a');
const url = new URL(process.env.AMQP_URL);
const conn = rhea.connect({ host: url.hostname, port: Number(url.port), reconnect: false });
const end = (why) => { console.log(why); fs.closeSync(out); process.exit(0); };
conn.on('disconnected', () => end('disconnected'));
conn.on('connection_error', () => end('connection error'));
if (mode === 'produce') {
  const n = Number(arg);
  let next = 0;
  const ids = new Map();
  const sender = conn.open_sender('kill');
  const fill = () => {
    while (sender.sendable() && next < n && ids.size < 50) {
      const d = sender.send({ body: 'm' + next, durable: true });
      ids.set(d.id, 'm' + next);
      next++;
    }
  };
  sender.on('sendable', fill);
  sender.on('accepted', (ctx) => {
    fs.writeSync(out, ids.get(ctx.delivery.id) + '\n');
    ids.delete(ctx.delivery.id);
    fill();
  });
} else {
  const idle = Number(arg) * 1000;
  let timer = setTimeout(() => { conn.close(); end('idle'); }, idle);
  const receiver = conn.open_receiver({ source: 'kill', autoaccept: false, credit_window: 100 });
  receiver.on('message', (ctx) => {
    fs.writeSync(out, ctx.message.body + '\n');
    ctx.delivery.accept();
    clearTimeout(timer);
    timer = setTimeout(() => { conn.close(); end('idle'); }, idle);
  });
}
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

// TestKillBroker: a client produces durable messages with unsettled sends
// while another consumes; the broker is SIGKILLed at a random point and
// restarted on its data; every send the client saw settled is then found
// among what was consumed before the kill and what a drain gets after it,
// and nothing that was never sent is.
func TestKillBroker(t *testing.T) {
	for _, lang := range []string{"python", "javascript"} {
		t.Run(lang, func(t *testing.T) {
			script := killScripts[lang]
			addr := testenv.FreeAddr(t)
			data := testenv.TempDir(t, "data")
			broker := startBroker(t, data, addr)
			dir := t.TempDir()
			sent, got, drained := filepath.Join(dir, "sent"), filepath.Join(dir, "got"), filepath.Join(dir, "drained")
			const n = 20000
			prod := testenv.StartCmd(t, "producer", clientCmd(t, lang, script, addr, "produce", sent, fmt.Sprint(n)))
			cons := testenv.StartCmd(t, "consumer", clientCmd(t, lang, script, addr, "consume", got, "60"))
			target := 300 + rand.IntN(1500)
			deadline := time.Now().Add(120 * time.Second)
			for len(readIDs(t, sent)) < target || len(readIDs(t, got)) < target/4 {
				if time.Now().After(deadline) || prod.Exited() || cons.Exited() {
					t.Fatalf("before the kill: %d sends settled, %d received\nproducer:\n%s\nconsumer:\n%s",
						len(readIDs(t, sent)), len(readIDs(t, got)), prod.Tail(20), cons.Tail(20))
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
			startBroker(t, data, addr)
			runClient(t, "drain", clientCmd(t, lang, script, addr, "consume", drained, "3"), 120*time.Second)
			checkKill(t, readIDs(t, sent), readIDs(t, got), readIDs(t, drained))
		})
	}
}

// checkKill checks that every settled send was consumed before or after
// the kill and that nothing unsent was.
func checkKill(t *testing.T, sent, before, after []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, id := range append(append([]string{}, before...), after...) {
		if !strings.HasPrefix(id, "m") {
			t.Errorf("consumed %q, which was never sent", id)
		}
		seen[id] = true
	}
	lost := 0
	for _, id := range sent {
		if !seen[id] {
			lost++
			if lost <= 10 {
				t.Errorf("%s: its send was settled, and it was never consumed", id)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d settled sends lost", lost)
	}
	t.Logf("%d sends settled, %d received before the kill, %d after", len(sent), len(before), len(after))
}

// TestKillBrokerGo is TestKillBroker with go-amqp, which also waits for
// the broker's settlement of each accept (rcv-settle-mode second): an
// accept the broker settled must never come again.
func TestKillBrokerGo(t *testing.T) {
	addr := testenv.FreeAddr(t)
	data := testenv.TempDir(t, "data")
	broker := startBroker(t, data, addr)
	url := "amqp://" + addr
	var mu sync.Mutex
	var sent, got, accepted []string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // producer: 8 sends in flight
		defer wg.Done()
		c, err := goamqp.Dial(ctx, url, nil)
		if err != nil {
			return
		}
		defer c.Close()
		s, err := c.NewSession(ctx, nil)
		if err != nil {
			return
		}
		snd, err := s.NewSender(ctx, "kill", nil)
		if err != nil {
			return
		}
		sem := make(chan struct{}, 8)
		var inner sync.WaitGroup
		for i := 0; ctx.Err() == nil; i++ {
			sem <- struct{}{}
			inner.Add(1)
			go func(id string) {
				defer inner.Done()
				defer func() { <-sem }()
				m := goamqp.NewMessage([]byte(id))
				m.Header = &goamqp.MessageHeader{Durable: true}
				if snd.Send(ctx, m, nil) == nil {
					mu.Lock()
					sent = append(sent, id)
					mu.Unlock()
				}
			}(fmt.Sprintf("m%d", i))
			if c.Err() != nil {
				break
			}
		}
		inner.Wait()
	}()
	go func() { // consumer: accepts confirmed by the broker
		defer wg.Done()
		c, err := goamqp.Dial(ctx, url, nil)
		if err != nil {
			return
		}
		defer c.Close()
		s, err := c.NewSession(ctx, nil)
		if err != nil {
			return
		}
		r, err := s.NewReceiver(ctx, "kill", &goamqp.ReceiverOptions{Credit: 50, SettlementMode: goamqp.ReceiverSettleModeSecond.Ptr()})
		if err != nil {
			return
		}
		for {
			m, err := r.Receive(ctx, nil)
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, string(m.GetData()))
			mu.Unlock()
			if r.AcceptMessage(ctx, m) != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, string(m.GetData()))
			mu.Unlock()
		}
	}()
	target := 500 + rand.IntN(2000)
	deadline := time.Now().Add(120 * time.Second)
	for {
		mu.Lock()
		ns, na := len(sent), len(accepted)
		mu.Unlock()
		if ns >= target && na >= target/4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("before the kill: %d sends settled, %d accepts settled", ns, na)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := broker.Kill(); err != nil {
		t.Fatal(err)
	}
	waitDone := make(chan struct{})
	go func() { wg.Wait(); close(waitDone) }()
	select {
	case <-waitDone:
	case <-time.After(60 * time.Second):
		t.Fatal("go-amqp clients did not end after the broker died")
	}
	startBroker(t, data, addr)
	c, err := goamqp.Dial(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.NewSession(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.NewReceiver(context.Background(), "kill", &goamqp.ReceiverOptions{Credit: 100, SettlementMode: goamqp.ReceiverSettleModeSecond.Ptr()})
	if err != nil {
		t.Fatal(err)
	}
	var after []string
	for {
		rctx, rcancel := context.WithTimeout(context.Background(), 3*time.Second)
		m, err := r.Receive(rctx, nil)
		rcancel()
		if err != nil {
			break
		}
		after = append(after, string(m.GetData()))
		if err := r.AcceptMessage(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	settledAccept := map[string]bool{}
	for _, id := range accepted {
		settledAccept[id] = true
	}
	for _, id := range after {
		if settledAccept[id] {
			t.Errorf("%s: its accept was settled by the broker, yet it came again after the restart", id)
		}
	}
	checkKill(t, sent, got, after)
}

// TestHostileProcess: against a broker process, a malformed AMQP stream
// and a client that never reads get a close, the broker lives on, and a
// real client works alongside.
func TestHostileProcess(t *testing.T) {
	addr := testenv.FreeAddr(t)
	broker := startBroker(t, testenv.TempDir(t, "data"), addr)
	c, err := goamqp.Dial(testCtx(t), "amqp://"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.NewSession(testCtx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	good := sender(t, s, "alive", nil)
	goodR := receiver(t, s, "alive", &goamqp.ReceiverOptions{Credit: 10})
	roundTrip := func(name string) {
		t.Helper()
		send(t, good, durable(name))
		m := recv(t, goodR)
		if string(m.GetData()) != name {
			t.Fatalf("good client got %q", m.GetData())
		}
		goodR.AcceptMessage(testCtx(t), m)
	}
	for name, stream := range map[string][]byte{
		"wrong header":    []byte("AMQP\x09\x09\x09\x09"),
		"oversized frame": append(append(headerAMQP[:], appendFrame(nil, frameAMQP, 0, &Open{ContainerID: "x", MaxFrameSize: 1 << 20}, nil)...), 0x7f, 0xff, 0xff, 0xff, 2, 0, 0, 0),
		"bad type code":   append(append(headerAMQP[:], appendFrame(nil, frameAMQP, 0, &Open{ContainerID: "x", MaxFrameSize: 1 << 20}, nil)...), appendFrame(nil, frameAMQP, 0, nil, []byte{0, 0x53, 0x11, 0xe7, 0xe7})...),
		"garbage open":    append(headerAMQP[:], 0, 0, 0, 12, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff),
	} {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(20 * time.Second))
		nc.Write(stream)
		// The broker answers and closes: reading reaches the end.
		br := bufio.NewReader(nc)
		for {
			if _, err := br.ReadByte(); err != nil {
				break
			}
		}
		nc.Close()
		roundTrip(name)
	}
	if broker.Exited() {
		t.Fatalf("broker died:\n%s", broker.Tail(30))
	}
}

// txScript drives local transactions with Qpid Proton's coordinator
// support: 10 transactional sends aborted, 10 committed, then 5 received
// and accepted in a transaction that is aborted (they come again), then 10
// received and accepted in a committed one. It prints each step's result.
const txScript = `
import os, sys
from proton import Message
from proton.handlers import MessagingHandler, TransactionHandler
from proton.reactor import Container

url = os.environ["AMQP_URL"]

class Tx(MessagingHandler, TransactionHandler):
    def __init__(self):
        super().__init__(prefetch=0, auto_accept=False)
        self.step, self.got = 0, []
    def on_start(self, event):
        self.container = event.container
        self.conn = event.container.connect(url, reconnect=False)
        self.sender = event.container.create_sender(self.conn, "txq")
        self.container.declare_transaction(self.conn, handler=self)
    def on_transaction_declared(self, event):
        self.txn = event.transaction
        if self.step in (0, 1):
            for i in range(10):
                self.txn.send(self.sender, Message(body="s%d-%d" % (self.step, i), durable=True))
            if self.step == 0:
                self.txn.abort()
            else:
                self.txn.commit()
        else:
            self.want = 5 if self.step == 2 else 10
            self.got = []
            if not hasattr(self, "receiver"):
                self.receiver = event.container.create_receiver(self.conn, "txq")
            self.receiver.flow(self.want)
    def on_message(self, event):
        self.got.append(event.message.body)
        self.txn.accept(event.delivery)
        if len(self.got) == self.want:
            if self.step == 2:
                self.txn.abort()
            else:
                self.txn.commit()
    def on_transaction_aborted(self, event):
        print("step", self.step, "aborted", len(self.got))
        self.next()
    def on_transaction_committed(self, event):
        print("step", self.step, "committed", len(self.got), " ".join(self.got))
        self.next()
    def on_transaction_declare_failed(self, event):
        print("declare failed")
        self.conn.close()
    def on_transaction_commit_failed(self, event):
        print("commit failed")
        self.conn.close()
    def next(self):
        self.step += 1
        if self.step == 4:
            self.conn.close()
            return
        self.container.declare_transaction(self.conn, handler=self)

Container(Tx()).run()
`

// TestTransactionsPython: Qpid Proton's local transactions: an aborted
// transaction stores nothing and its accepts are undone; a committed one
// stores its sends and acks its accepts.
func TestTransactionsPython(t *testing.T) {
	python(t)
	b := newTestBroker(t, server.Options{}, nil)
	out := runClient(t, "python", clientCmd(t, "python", txScript, b.addr()), 120*time.Second)
	for _, want := range []string{"step 0 aborted", "step 1 committed", "step 2 aborted 5", "step 3 committed 10"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "s0-") {
		t.Fatalf("a message of the aborted transaction was received:\n%s", out)
	}
	if info, _ := b.srv.Queue("txq"); info.Depth != 0 {
		t.Fatalf("depth %d after the committed accepts", info.Depth)
	}
}

// haScript is the client of TestHAPairPython: Qpid Proton with the pair's
// two URLs as its reconnect list. "produce N OUT" sends N durable messages
// (at most 50 unsettled) and appends each ID the broker settled as accepted
// to OUT, resending after a reconnect what had no outcome; "consume OUT
// IDLE" receives and accepts until nothing arrives for IDLE seconds.
const haScript = `
import os, sys
from proton import Message
from proton.handlers import MessagingHandler
from proton.reactor import Container

urls = os.environ["AMQP_URLS"].split(",")
mode, out = sys.argv[1], open(sys.argv[2], "a", buffering=1)

class Produce(MessagingHandler):
    def __init__(self, n):
        super().__init__()
        self.n, self.next, self.inflight, self.retry, self.done = n, 0, {}, [], 0
    def on_start(self, event):
        self.conn = event.container.connect(urls=urls)
        self.sender = event.container.create_sender(self.conn, "ha")
    def on_sendable(self, event):
        s = self.sender
        while s.credit and len(self.inflight) < 50 and (self.retry or self.next < self.n):
            if self.retry:
                mid = self.retry.pop()
            else:
                mid = "m%d" % self.next
                self.next += 1
            d = s.send(Message(body=mid, durable=True, properties={"_AMQ_DUPL_ID": mid}))
            self.inflight[d] = mid
    def on_accepted(self, event):
        mid = self.inflight.pop(event.delivery, None)
        if mid is None:
            return
        out.write(mid + "\n")
        self.done += 1
        if self.done == self.n:
            self.conn.close()
            return
        self.on_sendable(event)
    def on_disconnected(self, event):
        # No outcome for what was in flight: resend it (its duplicate ID
        # keeps it from being stored twice).
        print("disconnected; resending", len(self.inflight))
        self.retry.extend(self.inflight.values())
        self.inflight = {}

class Consume(MessagingHandler):
    def __init__(self, idle):
        super().__init__(prefetch=100)
        self.idle = idle
    def on_start(self, event):
        self.conn = event.container.connect(urls=urls)
        event.container.create_receiver(self.conn, "ha")
        self.timer = event.container.schedule(self.idle, self)
    def on_message(self, event):
        out.write(event.message.body + "\n")
        self.timer.cancel()
        self.timer = event.container.schedule(self.idle, self)
    def on_timer_task(self, event):
        self.conn.close()

h = Produce(int(sys.argv[3])) if mode == "produce" else Consume(float(sys.argv[3]))
Container(h).run()
`

// haConfig is one broker of a shared-store pair: an acceptor on port, a
// cluster connection probing peer, and the policy.
func haConfig(t *testing.T, name, shared string, port, peer string, policy string) string {
	t.Helper()
	xml := fmt.Sprintf(`<configuration xmlns="urn:activemq"><core xmlns="urn:activemq:core">
  <name>%s</name>
  <journal-directory>%[2]s/journal</journal-directory>
  <bindings-directory>%[2]s/bindings</bindings-directory>
  <paging-directory>%[2]s/paging</paging-directory>
  <large-messages-directory>%[2]s/large-messages</large-messages-directory>
  <acceptors><acceptor name="artemis">tcp://%[3]s</acceptor></acceptors>
  <connectors>
    <connector name="artemis">tcp://%[3]s</connector>
    <connector name="peer">tcp://%[4]s</connector>
  </connectors>
  <cluster-connections>
    <cluster-connection name="c">
      <connector-ref>artemis</connector-ref>
      <retry-interval>200</retry-interval>
      <static-connectors><connector-ref>peer</connector-ref></static-connectors>
    </cluster-connection>
  </cluster-connections>
  <ha-policy><shared-store>%[5]s</shared-store></ha-policy>
</core></configuration>`, name, shared, port, peer, policy)
	p := filepath.Join(testenv.TempDir(t, name+"-cfg"), "broker.xml")
	if err := os.WriteFile(p, []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHAPairPython: a shared-store pair and a Qpid Proton producer with
// both URLs as its reconnect list: the primary is SIGKILLed mid-stream,
// the client's own reconnect moves on (the waiting backup refuses it
// until it is live), and every send the client saw accepted is consumed
// from the backup.
func TestHAPairPython(t *testing.T) {
	python(t)
	bin := testenv.BuildTandem(t)
	shared := testenv.TempDir(t, "shared")
	a, b := testenv.FreeAddr(t), testenv.FreeAddr(t)
	primary := testenv.Start(t, "primary", bin, "run", "--config", haConfig(t, "primary", shared, a, b, "<primary/>"), "--http", testenv.FreeAddr(t))
	testenv.WaitListening(t, primary, a, 60*time.Second)
	backup := testenv.Start(t, "backup", bin, "run", "--config", haConfig(t, "backup", shared, b, a, "<backup/>"), "--http", testenv.FreeAddr(t))
	testenv.WaitListening(t, backup, b, 60*time.Second)
	urls := "AMQP_URLS=amqp://" + a + ",amqp://" + b
	dir := t.TempDir()
	sent, got := filepath.Join(dir, "sent"), filepath.Join(dir, "got")
	const n = 3000
	pcmd := clientCmd(t, "python", haScript, a, "produce", sent, fmt.Sprint(n))
	pcmd.Env = append(pcmd.Env, urls)
	prod := testenv.StartCmd(t, "producer", pcmd)
	target := 200 + rand.IntN(800)
	deadline := time.Now().Add(120 * time.Second)
	for len(readIDs(t, sent)) < target {
		if time.Now().After(deadline) || prod.Exited() {
			t.Fatalf("before the kill: %d sends accepted\n%s", len(readIDs(t, sent)), prod.Tail(20))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := primary.Kill(); err != nil {
		t.Fatal(err)
	}
	if code, err := prod.Wait(180 * time.Second); err != nil || code != 0 {
		t.Fatalf("producer: exit %d, %v\n%s\nbackup:\n%s", code, err, prod.Tail(30), backup.Tail(30))
	}
	ccmd := clientCmd(t, "python", haScript, b, "consume", got, "3")
	ccmd.Env = append(ccmd.Env, urls)
	runClient(t, "consumer", ccmd, 180*time.Second)
	s, g := readIDs(t, sent), readIDs(t, got)
	if len(s) != n {
		t.Fatalf("%d sends accepted, want %d", len(s), n)
	}
	seen := map[string]int{}
	for _, id := range g {
		seen[id]++
	}
	for _, id := range s {
		if seen[id] == 0 {
			t.Errorf("%s: accepted, never consumed", id)
		}
	}
	dups := 0
	for _, c := range seen {
		if c > 1 {
			dups++
		}
	}
	t.Logf("%d accepted, %d consumed, %d duplicated", len(s), len(g), dups)
	if dups > 0 {
		t.Errorf("%d messages consumed more than once despite their duplicate IDs", dups)
	}
}
