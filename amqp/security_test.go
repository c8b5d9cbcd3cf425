package amqp

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/tandemmq/tandem/auth"
	brokercfg "github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/internal/testcerts"
	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/tlsconfig"
	"github.com/tandemmq/tandem/wire"
)

// secureBroker is a server with an acceptor that serves AMQP through the
// broker's own login and permission checks (not the harness's).
func secureBroker(t *testing.T, opts server.NetOptions) string {
	t.Helper()
	srv := server.New(server.Options{Messages: journal.NewMemory(), Bindings: journal.NewMemory(), Logger: testLogger()})
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.RegisterProtocol(New())
	a, err := srv.Listen("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.Close(wire.CodeShuttingDown, "test over")
		srv.Close()
	})
	return a.Addr().String()
}

func securityGuard(t *testing.T, users ...auth.User) *auth.Guard {
	t.Helper()
	cfg, _, err := brokercfg.Parse("b.xml", strings.NewReader(`<configuration><core><security-settings>
	  <security-setting match="#"><permission type="send" roles="admin"/><permission type="consume" roles="admin"/>
	    <permission type="createDurableQueue" roles="admin"/><permission type="createAddress" roles="admin"/></security-setting>
	  <security-setting match="orders.#"><permission type="send" roles="app"/><permission type="consume" roles="app"/>
	    <permission type="createDurableQueue" roles="app"/><permission type="createAddress" roles="app"/></security-setting>
	</security-settings></core></configuration>`))
	if err != nil {
		t.Fatal(err)
	}
	o := auth.Options{Users: []brokercfg.User{{Name: "app", Password: "pw", Roles: []string{"app"}}},
		Settings: cfg.Security.Settings, SettingsSet: true, Interval: time.Minute, Logger: slog.New(slog.DiscardHandler)}
	if len(users) > 0 {
		f := filepath.Join(t.TempDir(), "users")
		if err := auth.WriteUsersFile(f, users); err != nil {
			t.Fatal(err)
		}
		o.UsersFile = f
	}
	g, err := auth.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func dialAMQP(url string, opts *goamqp.ConnOptions) (*goamqp.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return goamqp.Dial(ctx, url, opts)
}

// TestSecurityGoAMQP: go-amqp with a wrong password is refused at SASL;
// without SASL it is refused with amqp:unauthorized-access; a sender or
// receiver on an address the user may not use is refused at attach with
// amqp:unauthorized-access and the reason; the connection goes on serving
// what the user may do.
func TestSecurityGoAMQP(t *testing.T) {
	addr := secureBroker(t, server.NetOptions{Security: securityGuard(t)})
	url := "amqp://" + addr
	if _, err := dialAMQP(url, &goamqp.ConnOptions{SASLType: goamqp.SASLTypePlain("app", "wrong")}); err == nil {
		t.Error("wrong password accepted")
	}
	if c, err := dialAMQP(url, &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous()}); err == nil {
		c.Close()
		t.Error("anonymous accepted on a broker with users")
	}
	c, err := dialAMQP(url, &goamqp.ConnOptions{SASLType: goamqp.SASLTypePlain("app", "pw")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testCtx(t)
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.NewSender(ctx, "payments", nil)
	if !isAMQPError(err, goamqp.ErrCondUnauthorizedAccess) || !strings.Contains(err.Error(), `may not send on address "payments"`) {
		t.Errorf("sender on payments: %v", err)
	}
	_, err = s.NewReceiver(ctx, "payments", nil)
	if !isAMQPError(err, goamqp.ErrCondUnauthorizedAccess) || !strings.Contains(err.Error(), `may not consume on address "payments"`) {
		t.Errorf("receiver on payments: %v", err)
	}
	snd, err := s.NewSender(ctx, "orders.eu", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snd.Send(ctx, goamqp.NewMessage([]byte("o")), nil); err != nil {
		t.Fatal(err)
	}
	rcv, err := s.NewReceiver(ctx, "orders.eu", nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := rcv.Receive(ctx, nil)
	if err != nil || string(m.GetData()) != "o" {
		t.Fatalf("receive: %v", err)
	}
	rcv.AcceptMessage(ctx, m)
}

// TestTLSGoAMQP: amqps:// against a TLS acceptor; a client certificate
// logs in with SASL EXTERNAL as its user; a plain client on the TLS port
// does not get in.
func TestTLSGoAMQP(t *testing.T) {
	ca := testcerts.NewCA(t, "amqp")
	srv := ca.Issue(t, "broker", testcerts.Options{})
	cli := ca.Issue(t, "app-cert", testcerts.Options{Client: true})
	p, _ := tlsconfig.FromParams(map[string]string{"sslEnabled": "true", "keyStorePath": srv.File,
		"wantClientAuth": "true", "trustStorePath": ca.File})
	sc, err := p.Server()
	if err != nil {
		t.Fatal(err)
	}
	g := securityGuard(t, auth.User{Name: "certified", Roles: []string{"app"}, CertSubject: cli.Cert.Subject.String()})
	addr := secureBroker(t, server.NetOptions{TLS: sc, Security: g})

	if c, err := dialAMQP("amqp://"+addr, &goamqp.ConnOptions{SASLType: goamqp.SASLTypePlain("app", "pw")}); err == nil {
		c.Close()
		t.Error("a plain-text AMQP client got in on a TLS acceptor")
	}
	cp, _ := tlsconfig.FromParams(map[string]string{"trustStorePath": ca.File})
	cc, err := cp.Client()
	if err != nil {
		t.Fatal(err)
	}
	c, err := dialAMQP("amqps://"+addr, &goamqp.ConnOptions{TLSConfig: tlsconfig.ForHost(cc, "127.0.0.1"),
		SASLType: goamqp.SASLTypePlain("app", "pw")})
	if err != nil {
		t.Fatalf("amqps with a password: %v", err)
	}
	c.Close()

	cp, _ = tlsconfig.FromParams(map[string]string{"trustStorePath": ca.File, "keyStorePath": cli.File})
	cc, err = cp.Client()
	if err != nil {
		t.Fatal(err)
	}
	c, err = dialAMQP("amqps://"+addr, &goamqp.ConnOptions{TLSConfig: tlsconfig.ForHost(cc, "127.0.0.1"),
		SASLType: goamqp.SASLTypeExternal("")})
	if err != nil {
		t.Fatalf("amqps with SASL EXTERNAL: %v", err)
	}
	defer c.Close()
	ctx := testCtx(t)
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.NewSender(ctx, "orders.certified", nil); err != nil {
		t.Errorf("the certificate's user may send on orders.#: %v", err)
	}
	if _, err := s.NewSender(ctx, "payments", nil); !isAMQPError(err, goamqp.ErrCondUnauthorizedAccess) {
		t.Errorf("the certificate's user on payments: %v", err)
	}
}
