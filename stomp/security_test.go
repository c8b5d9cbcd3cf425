package stomp

import (
	"bufio"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/tandemmq/tandem/auth"
	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/internal/testcerts"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/tlsconfig"
)

// guard returns a guard with users app (send and consume on orders.#)
// and admin (everything).
func guard(t *testing.T) *auth.Guard {
	t.Helper()
	cfg, _, err := config.Parse("b.xml", strings.NewReader(`<configuration><core><security-settings>
	  <security-setting match="#"><permission type="send" roles="admin"/><permission type="consume" roles="admin"/>
	    <permission type="createDurableQueue" roles="admin"/><permission type="createAddress" roles="admin"/>
	    <permission type="createNonDurableQueue" roles="admin"/></security-setting>
	  <security-setting match="orders.#"><permission type="send" roles="app"/><permission type="consume" roles="app"/>
	    <permission type="createDurableQueue" roles="app"/><permission type="createAddress" roles="app"/></security-setting>
	</security-settings></core></configuration>`))
	if err != nil {
		t.Fatal(err)
	}
	g, err := auth.New(auth.Options{Users: []config.User{{Name: "app", Password: "pw", Roles: []string{"app"}},
		{Name: "admin", Password: "adm", Roles: []string{"admin"}}},
		Settings: cfg.Security.Settings, SettingsSet: true, Interval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestSecurity: a wrong passcode is an ERROR naming the user; a SEND or
// SUBSCRIBE without the permission is an ERROR saying which permission is
// missing on which address; a connection that may do what it asks is
// served throughout.
func TestSecurity(t *testing.T) {
	b := newBroker(t, server.NetOptions{Security: guard(t)}, Options{})
	ok := connect(t, b.addr, "login:app", "passcode:pw")

	r := dialRaw(t, b.addr)
	r.send("CONNECT", []string{"accept-version:1.2", "login:app", "passcode:wrong"}, "")
	if e := r.expectError(); e.Value("message") != "authentication failed" || !strings.Contains(string(e.Body), `user "app": wrong user name or password`) {
		t.Errorf("wrong passcode: %v %q", e.Headers, e.Body)
	}
	r = dialRaw(t, b.addr)
	r.send("CONNECT", []string{"accept-version:1.2"}, "")
	if e := r.expectError(); !strings.Contains(string(e.Body), "requires a user name and password") {
		t.Errorf("no login: %v %q", e.Headers, e.Body)
	}

	r = connect(t, b.addr, "login:app", "passcode:pw")
	r.send("SEND", []string{"destination:payments", "receipt:1"}, "x")
	if e := r.expectError(); !strings.Contains(string(e.Body), `user "app" may not send on address "payments"`) {
		t.Errorf("send: %v %q", e.Headers, e.Body)
	}
	r = connect(t, b.addr, "login:app", "passcode:pw")
	r.send("SUBSCRIBE", []string{"destination:payments", "id:1", "receipt:2"}, "")
	if e := r.expectError(); !strings.Contains(string(e.Body), `may not consume on address "payments"`) {
		t.Errorf("subscribe: %v %q", e.Headers, e.Body)
	}

	ok.send("SEND", []string{"destination:orders.eu", "receipt:3"}, "o")
	ok.expect("RECEIPT")
	ok.send("SUBSCRIBE", []string{"destination:orders.eu", "id:1"}, "")
	if m := ok.expect("MESSAGE"); string(m.Body) != "o" {
		t.Fatalf("message %q", m.Body)
	}
}

// TestTLS: STOMP over a TLS acceptor (detected inside TLS), and a STOMP
// client in plain text on it gets an ERROR saying the acceptor requires
// TLS.
func TestTLS(t *testing.T) {
	ca := testcerts.NewCA(t, "stomp")
	srv := ca.Issue(t, "broker", testcerts.Options{})
	p, _ := tlsconfig.FromParams(map[string]string{"sslEnabled": "true", "keyStorePath": srv.File, "trustStorePath": ca.File})
	sc, err := p.Server()
	if err != nil {
		t.Fatal(err)
	}
	b := newBroker(t, server.NetOptions{TLS: sc}, Options{})

	r := dialRaw(t, b.addr)
	r.send("CONNECT", []string{"accept-version:1.2"}, "")
	if e := r.expectError(); !strings.Contains(e.Value("message")+string(e.Body), "requires TLS") {
		t.Errorf("plain STOMP on a TLS port: %v %q", e.Headers, e.Body)
	}

	cc, _ := p.Client()
	nc, err := tls.Dial("tcp", b.addr, tlsconfig.ForHost(cc, "127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	tr := &raw{t: t, nc: nc, dec: NewDecoder(bufio.NewReader(nc), Limits{MaxBody: 4 << 20})}
	tr.send("CONNECT", []string{"accept-version:1.2"}, "")
	tr.expect("CONNECTED")
	tr.send("SEND", []string{"destination:/queue/q", "receipt:1"}, "secure")
	tr.expect("RECEIPT")
	tr.send("SUBSCRIBE", []string{"destination:/queue/q", "id:1"}, "")
	if m := tr.expect("MESSAGE"); string(m.Body) != "secure" {
		t.Fatalf("message %q", m.Body)
	}
}
