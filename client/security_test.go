package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemmq/tandem/auth"
	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/internal/testcerts"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/tlsconfig"
	"github.com/tandemmq/tandem/wire"
)

// syncBuf is a log destination tests read while the broker writes.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// restartWith restarts the test broker with opts.
func (b *testBroker) restartWith(opts server.NetOptions) {
	b.t.Helper()
	b.stop()
	b.opts = opts
	b.start("127.0.0.1:0")
}

func tlsServer(t *testing.T, m map[string]string) *server.NetOptions {
	t.Helper()
	m["sslEnabled"] = "true"
	p, err := tlsconfig.FromParams(m)
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.Server()
	if err != nil {
		t.Fatal(err)
	}
	return &server.NetOptions{TLS: c}
}

func tlsURL(b *testBroker, params map[string]string) string {
	q := url.Values{"sslEnabled": {"true"}}
	for k, v := range params {
		q.Set(k, v)
	}
	return b.url() + "?" + q.Encode()
}

// roundTrip sends one message to queue q and receives it.
func roundTrip(t *testing.T, c *Conn, q string) {
	t.Helper()
	s := session(t, c)
	if err := s.CreateProducer(Queue(q)).Send(testCtx(t), &Message{Body: []byte("over tls"), Durable: true}); err != nil {
		t.Fatal(err)
	}
	if got := receiveN(t, consumer(t, s, Queue(q)), 1); got[0] != "over tls" {
		t.Fatalf("got %q", got)
	}
}

// TestTLS: a client trusting the broker's CA works over TLS; a plain-text
// client on the TLS port is told the acceptor requires TLS; a client that
// does not trust the broker's certificate, or meets an expired one, gets
// the reason; a TLS client on a plain port gets a clear error. The broker
// serves the good client throughout.
func TestTLS(t *testing.T) {
	ca := testcerts.NewCA(t, "tls")
	other := testcerts.NewCA(t, "other")
	srv := ca.Issue(t, "broker", testcerts.Options{})
	b := newTestBroker(t)
	b.restartWith(*tlsServer(t, map[string]string{"keyStorePath": srv.File}))

	good := dial(t, tlsURL(b, map[string]string{"trustStorePath": ca.File}))
	roundTrip(t, good, "tls.q")

	_, err := Dial(testCtx(t), b.url())
	var se *ServerError
	if !errors.As(err, &se) || !strings.Contains(se.Message, "requires TLS") {
		t.Errorf("plain client on a TLS port: %v", err)
	}
	_, err = Dial(testCtx(t), tlsURL(b, map[string]string{"trustStorePath": other.File}))
	if err == nil || !strings.Contains(err.Error(), "TLS handshake with") || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("untrusted broker certificate: %v", err)
	}
	_, err = Dial(testCtx(t), tlsURL(b, map[string]string{}))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("system trust store: %v", err)
	}
	roundTrip(t, good, "tls.q2")

	expired := ca.Issue(t, "broker", testcerts.Options{Expired: true})
	b.restartWith(*tlsServer(t, map[string]string{"keyStorePath": expired.File}))
	_, err = Dial(testCtx(t), tlsURL(b, map[string]string{"trustStorePath": ca.File}))
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired broker certificate: %v", err)
	}

	b.restartWith(server.NetOptions{})
	_, err = Dial(testCtx(t), tlsURL(b, map[string]string{"trustStorePath": ca.File}))
	if err == nil || !strings.Contains(err.Error(), "TLS handshake with") {
		t.Errorf("TLS client on a plain port: %v", err)
	}
}

// TestTLSClientCertificate: with needClientAuth, a client certificate from
// the trusted CA logs in as the user whose cert= subject it carries, with
// no password; no certificate, an expired one or one from another CA is
// refused at the handshake, with the reason on the client's side.
func TestTLSClientCertificate(t *testing.T) {
	ca := testcerts.NewCA(t, "mtls")
	other := testcerts.NewCA(t, "rogue")
	srv := ca.Issue(t, "broker", testcerts.Options{})
	cli := ca.Issue(t, "app", testcerts.Options{Client: true})
	expired := ca.Issue(t, "app", testcerts.Options{Client: true, Expired: true})
	rogue := other.Issue(t, "app", testcerts.Options{Client: true})
	users := filepath.Join(t.TempDir(), "users")
	if err := auth.WriteUsersFile(users, []auth.User{{Name: "app", Roles: []string{"amq"}, CertSubject: cli.Cert.Subject.String()}}); err != nil {
		t.Fatal(err)
	}
	g, err := auth.New(auth.Options{UsersFile: users, UsersFileRequired: true})
	if err != nil {
		t.Fatal(err)
	}
	opts := tlsServer(t, map[string]string{"keyStorePath": srv.File, "needClientAuth": "true", "trustStorePath": ca.File})
	opts.Security = g
	b := newTestBroker(t)
	b.restartWith(*opts)

	c := dial(t, tlsURL(b, map[string]string{"trustStorePath": ca.File, "keyStorePath": cli.File}))
	roundTrip(t, c, "mtls.q")
	var conns []map[string]any
	if err := c.Manage(testCtx(t), "connection.list", nil, &conns); err != nil || len(conns) != 1 || conns[0]["user"] != "app" {
		t.Errorf("connection list: %v %v", conns, err)
	}
	for name, ks := range map[string]string{"no certificate": "", "expired": expired.File, "another CA": rogue.File} {
		params := map[string]string{"trustStorePath": ca.File}
		if ks != "" {
			params["keyStorePath"] = ks
		}
		_, err := Dial(testCtx(t), tlsURL(b, params))
		if err == nil || !strings.Contains(err.Error(), "TLS handshake with") {
			t.Errorf("%s: %v", name, err)
		}
	}
	roundTrip(t, c, "mtls.q2")
}

// securedBroker restarts b with users and security settings; it returns
// the guard's log.
func securedBroker(t testing.TB, b *testBroker, th auth.ThrottleOptions) *syncBuf {
	t.Helper()
	cfg, _, err := config.Parse("b.xml", strings.NewReader(`<configuration><core>
	  <security-settings>
	    <security-setting match="#">
	      <permission type="send" roles="admin"/><permission type="consume" roles="admin"/>
	      <permission type="createDurableQueue" roles="admin"/><permission type="deleteDurableQueue" roles="admin"/>
	      <permission type="createNonDurableQueue" roles="admin"/><permission type="deleteNonDurableQueue" roles="admin"/>
	      <permission type="createAddress" roles="admin"/><permission type="deleteAddress" roles="admin"/>
	      <permission type="browse" roles="admin"/><permission type="manage" roles="admin"/>
	    </security-setting>
	    <security-setting match="orders.#">
	      <permission type="send" roles="app"/><permission type="consume" roles="app"/>
	      <permission type="createDurableQueue" roles="app"/><permission type="createAddress" roles="app"/>
	    </security-setting>
	  </security-settings></core></configuration>`))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuf{}
	g, err := auth.New(auth.Options{
		Users:    []config.User{{Name: "admin", Password: "adm", Roles: []string{"admin"}}, {Name: "app", Password: "app-pw", Roles: []string{"app"}}},
		Settings: cfg.Security.Settings, SettingsSet: true, Interval: time.Minute, Throttle: th,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	b.restartWith(server.NetOptions{Security: g})
	return logs
}

func forbidden(t *testing.T, what string, err error) {
	t.Helper()
	var se *ServerError
	if !errors.As(err, &se) || se.Code != wire.CodeForbidden || !strings.Contains(se.Message, "permission denied") {
		t.Errorf("%s: %v, want forbidden", what, err)
	}
}

// TestPermissionsPerOperation: a user missing a permission is refused
// that operation, over the client protocol, with CodeForbidden and a
// message naming the user, the permission and the address; its
// connection goes on serving what it may do.
func TestPermissionsPerOperation(t *testing.T) {
	b := newTestBroker(t)
	securedBroker(t, b, auth.ThrottleOptions{})
	ctx := testCtx(t)
	admin := dial(t, b.url()+"?user=admin&password=adm")
	as := session(t, admin)
	if err := admin.CreateQueue(ctx, QueueConfig{Name: "payments", Durable: true}); err != nil {
		t.Fatal(err)
	}
	if err := as.CreateProducer(Queue("payments")).Send(ctx, &Message{Body: []byte("p"), Durable: true}); err != nil {
		t.Fatal(err)
	}

	app := dial(t, b.url(), WithCredentials("app", "app-pw"))
	s := session(t, app)
	// Allowed: orders.* (auto-created on send, then consumed).
	if err := s.CreateProducer(Queue("orders.eu")).Send(ctx, &Message{Body: []byte("o"), Durable: true}); err != nil {
		t.Fatalf("send to orders.eu: %v", err)
	}
	forbidden(t, "send to payments", s.CreateProducer(Queue("payments")).Send(ctx, &Message{Body: []byte("x"), Durable: true}))
	_, err := s.CreateConsumer(ctx, Queue("payments"))
	forbidden(t, "consume from payments", err)
	forbidden(t, "create queue", app.CreateQueue(ctx, QueueConfig{Name: "audit", Durable: true}))
	forbidden(t, "create non-durable queue on orders", app.CreateQueue(ctx, QueueConfig{Name: "orders.tmp", Durable: false}))
	forbidden(t, "delete queue", app.DeleteQueue(ctx, "payments"))
	err = app.Manage(ctx, "queue.purge", map[string]any{"name": "payments"}, nil)
	forbidden(t, "purge", err)
	err = app.Manage(ctx, "queue.browse", map[string]any{"name": "payments"}, nil)
	forbidden(t, "browse", err)
	err = app.Manage(ctx, "address.delete", map[string]any{"name": "orders.eu"}, nil)
	forbidden(t, "delete address", err)
	// The connection still serves what app may do.
	if got := receiveN(t, consumer(t, s, Queue("orders.eu")), 1); got[0] != "o" {
		t.Fatalf("got %q", got)
	}
	// And the admin may do all of it.
	if err := admin.Manage(ctx, "queue.browse", map[string]any{"name": "payments"}, nil); err != nil {
		t.Errorf("admin browse: %v", err)
	}
	if err := admin.Manage(ctx, "queue.purge", map[string]any{"name": "payments"}, nil); err != nil {
		t.Errorf("admin purge: %v", err)
	}
	if err := admin.DeleteQueue(ctx, "payments"); err != nil {
		t.Errorf("admin delete: %v", err)
	}
}

// TestBruteForce: wrong passwords from one host make its next logins wait
// longer (the guard logs the growing delay), and past the few it lets
// wait, its logins are refused at once; meanwhile a client already
// connected, and a client from another host, are served.
func TestBruteForce(t *testing.T) {
	b := newTestBroker(t)
	logs := securedBroker(t, b, auth.ThrottleOptions{FreeFailures: 2, BaseDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond, MaxWaiting: 2})
	ctx := testCtx(t)
	good := dial(t, b.url()+"?user=app&password=app-pw")
	gs := session(t, good)
	for i := range 6 {
		_, err := Dial(ctx, b.url()+"?user=app&password=guess"+fmt.Sprint(i))
		var se *ServerError
		if !errors.As(err, &se) || se.Code != wire.CodeAuthFailed || !strings.Contains(se.Message, "wrong user name or password") {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	for _, want := range []string{"next_delay=0s", "next_delay=20ms", "next_delay=40ms", "next_delay=80ms"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log has no %s:\n%s", want, logs.String())
		}
	}
	// Many guesses at once: beyond the two that may wait, refused at once.
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := Dial(ctx, b.url()+"?user=app&password=burst"+fmt.Sprint(i))
			if err != nil && strings.Contains(err.Error(), "too many failed logins") {
				mu.Lock()
				refused++
				mu.Unlock()
			}
		}()
	}
	// The connected client is served meanwhile.
	if err := gs.CreateProducer(Queue("orders.bf")).Send(ctx, &Message{Body: []byte("still here"), Durable: true}); err != nil {
		t.Errorf("connected client during the attack: %v", err)
	}
	wg.Wait()
	if refused == 0 {
		t.Error("no burst login was refused as too many")
	}
	// Another host logs in without waiting its turn behind the attacker.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	nc, err := d.DialContext(ctx, "tcp", b.addr)
	if err != nil {
		t.Skipf("cannot dial from 127.0.0.2: %v", err)
	}
	nc.Close()
	other, err := Dial(ctx, b.url()+"?user=app&password=app-pw", WithDialer(&d))
	if err != nil {
		t.Fatalf("another host: %v", err)
	}
	other.Close()
	if strings.Contains(logs.String(), "guess") || strings.Contains(logs.String(), "app-pw") {
		t.Errorf("a password reached the log:\n%s", logs.String())
	}
}

// FuzzHello: any Hello credentials (and client ID) get an answer, Welcome
// or an authentication error, never a panic or a hang; only the right
// password passes.
func FuzzHello(f *testing.F) {
	f.Add("app", "app-pw", "id")
	f.Add("", "", "")
	f.Add("app\x00", "\xff\xfe", strings.Repeat("x", 300))
	b := newTestBroker(f)
	securedBroker(f, b, auth.ThrottleOptions{FreeFailures: 1 << 30})
	f.Fuzz(func(t *testing.T, user, password, id string) {
		if len(user)+len(password)+len(id) > 12<<10 {
			return // over the 16 KiB Hello bound: a protocol error, tested elsewhere
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := Dial(ctx, b.url(), WithCredentials(user, password), WithClientID(id))
		ok := (user == "app" && password == "app-pw") || (user == "admin" && password == "adm")
		if ok != (err == nil) {
			t.Fatalf("Dial(%q, %q): %v, want ok=%v", user, password, err, ok)
		}
		if err == nil {
			c.Close()
			return
		}
		var se *ServerError
		if !errors.As(err, &se) || se.Code != wire.CodeAuthFailed {
			t.Fatalf("Dial(%q, %q): %v, want an authentication error", user, password, err)
		}
	})
}

// TestErrorsHideURLPasswords: a dial or URL error shows the URL without
// its passwords.
func TestErrorsHideURLPasswords(t *testing.T) {
	b := newTestBroker(t)
	securedBroker(t, b, auth.ThrottleOptions{})
	for _, u := range []string{
		b.url() + "?user=app&password=hunter2",
		"(" + b.url() + ")?user=app&password=hunter2&retryInterval=x",
		b.url() + "?sslEnabled=true&trustStorePath=/nonexistent&trustStorePassword=hunter2",
	} {
		_, err := Dial(testCtx(t), u)
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%v", err)
		}
	}
	if got := Redact("(tcp://a:1?password=x,tcp://b:2)?user=u&keyStorePassword=y;trustStorePassword=z"); got != "(tcp://a:1?password=****,tcp://b:2)?user=u&keyStorePassword=****;trustStorePassword=****" {
		t.Errorf("Redact: %s", got)
	}
}
