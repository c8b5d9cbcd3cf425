package tlsconfig

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandemmq/tandem/internal/testcerts"
)

// TestRC2Vectors: the test vectors of RFC 2268 section 5 decrypt.
func TestRC2Vectors(t *testing.T) {
	for _, v := range []struct {
		key, plain, cipher string
		t1                 int
	}{
		{"0000000000000000", "0000000000000000", "ebb773f993278eff", 63},
		{"ffffffffffffffff", "ffffffffffffffff", "278b27e42e2f0d49", 64},
		{"3000000000000000", "1000000000000001", "30649edf9be7d2c2", 64},
		{"88", "0000000000000000", "61a8a244adacccf0", 64},
		{"88bca90e90875a", "0000000000000000", "6ccf4308974c267f", 64},
		{"88bca90e90875a7f0f79c384627bafb2", "0000000000000000", "1a807d272bbe5db1", 64},
		{"88bca90e90875a7f0f79c384627bafb2", "0000000000000000", "2269552ab0f85ca6", 128},
	} {
		key, _ := hex.DecodeString(v.key)
		ct, _ := hex.DecodeString(v.cipher)
		want, _ := hex.DecodeString(v.plain)
		got := make([]byte, 8)
		newRC2(key, v.t1).Decrypt(got, ct)
		if !bytes.Equal(got, want) {
			t.Errorf("key %s t1 %d: %x, want %s", v.key, v.t1, got, v.plain)
		}
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed", name)
	}
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// TestPKCS12FromTools: keystores as openssl (today's and -legacy) and
// keytool (today's PBES2/AES and the legacy RC2/3DES) write them load,
// with the key matching the certificate and the CA chain; the wrong
// password is named as such.
func TestPKCS12FromTools(t *testing.T) {
	ca := testcerts.NewCA(t, "p12")
	srv := ca.Issue(t, "broker", testcerts.Options{})
	dir := t.TempDir()
	stores := map[string]string{}
	if _, err := exec.LookPath("openssl"); err == nil {
		for name, extra := range map[string][]string{"openssl": nil, "openssl-legacy": {"-legacy"}} {
			f := filepath.Join(dir, name+".p12")
			args := append([]string{"pkcs12", "-export", "-in", srv.CertFile, "-inkey", srv.KeyFile, "-certfile", ca.File,
				"-passout", "pass:s3cret", "-out", f, "-name", "broker"}, extra...)
			run(t, "openssl", args...)
			stores[name] = f
		}
	}
	if _, err := exec.LookPath("keytool"); err == nil && stores["openssl"] != "" {
		for name, extra := range map[string][]string{"keytool": nil, "keytool-legacy": {"-J-Dkeystore.pkcs12.legacy"}} {
			f := filepath.Join(dir, name+".p12")
			args := append([]string{"-importkeystore", "-noprompt", "-srckeystore", stores["openssl"], "-srcstoretype", "PKCS12",
				"-srcstorepass", "s3cret", "-destkeystore", f, "-deststoretype", "PKCS12", "-deststorepass", "s3cret"}, extra...)
			run(t, "keytool", args...)
			stores[name] = f
		}
	}
	if len(stores) == 0 {
		t.Skip("neither openssl nor keytool installed")
	}
	for name, f := range stores {
		t.Run(name, func(t *testing.T) {
			cert, err := LoadKeyStore(f, "PKCS12", "s3cret")
			if err != nil {
				t.Fatal(err)
			}
			if !cert.Leaf.Equal(srv.Cert) {
				t.Errorf("leaf %v, want %v", cert.Leaf.Subject, srv.Cert.Subject)
			}
			if len(cert.Certificate) != 2 {
				t.Errorf("chain of %d certificates, want 2 (leaf and CA)", len(cert.Certificate))
			}
			// Detected without the type, too.
			if _, err := LoadKeyStore(f, "", "s3cret"); err != nil {
				t.Errorf("detected type: %v", err)
			}
			if _, err := LoadKeyStore(f, "PKCS12", "wrong"); err == nil || !strings.Contains(err.Error(), "wrong password") {
				t.Errorf("wrong password: %v", err)
			}
			if _, err := LoadTrustStore(f, "PKCS12", "s3cret"); err != nil {
				t.Errorf("as a trust store: %v", err)
			}
		})
	}
}

// TestEncryptedPEMKey: a PKCS#8 key encrypted with PBES2 (openssl pkcs8
// -topk8 -v2 aes256) loads with keyStorePassword.
func TestEncryptedPEMKey(t *testing.T) {
	ca := testcerts.NewCA(t, "pem")
	srv := ca.Issue(t, "broker", testcerts.Options{})
	enc := filepath.Join(t.TempDir(), "key.pem")
	run(t, "openssl", "pkcs8", "-topk8", "-v2", "aes256", "-in", srv.KeyFile, "-out", enc, "-passout", "pass:pw")
	keyPEM, _ := os.ReadFile(enc)
	certPEM, _ := os.ReadFile(srv.CertFile)
	store := filepath.Join(t.TempDir(), "store.pem")
	os.WriteFile(store, append(certPEM, keyPEM...), 0o600)
	if _, err := LoadKeyStore(store, "PEM", "pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyStore(store, "PEM", ""); err == nil || !strings.Contains(err.Error(), "set keyStorePassword") {
		t.Errorf("no password: %v", err)
	}
	if _, err := LoadKeyStore(store, "PEM", "nope"); err == nil {
		t.Error("wrong password accepted")
	}
}

func TestParamsErrors(t *testing.T) {
	for _, tc := range []struct {
		m    map[string]string
		want string
	}{
		{map[string]string{"sslEnabled": "yes"}, `sslEnabled="yes": want true or false`},
		{map[string]string{"keyStoreType": "JKS"}, "convert with: keytool -importkeystore"},
		{map[string]string{"trustStoreType": "XYZ"}, "want PEM or PKCS12"},
		{map[string]string{"enabledProtocols": "SSLv3"}, "want TLSv1.2 and/or TLSv1.3"},
	} {
		if _, err := FromParams(tc.m); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.m, err, tc.want)
		}
	}
	p, _ := FromParams(map[string]string{"sslEnabled": "true"})
	if _, err := p.Server(); err == nil || !strings.Contains(err.Error(), "needs keyStorePath") {
		t.Errorf("no key store: %v", err)
	}
	p, _ = FromParams(map[string]string{"sslEnabled": "true", "keyStorePath": "/nonexistent.pem"})
	if _, err := p.Server(); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing key store: %v", err)
	}
	ca := testcerts.NewCA(t, "x")
	p, _ = FromParams(map[string]string{"sslEnabled": "true", "keyStorePath": ca.File})
	if _, err := p.Server(); err == nil || !strings.Contains(err.Error(), "no private key") {
		t.Errorf("a trust store as key store: %v", err)
	}
}

// handshake runs a TLS handshake between a server and a client config and
// returns the client's error and the server's.
func handshake(t *testing.T, sc, cc *tls.Config, host string) (clientErr, serverErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer nc.Close()
		s := tls.Server(nc, sc)
		s.SetDeadline(time.Now().Add(10 * time.Second))
		err = s.Handshake()
		if err == nil {
			// TLS 1.3 verifies the client's certificate after the
			// client's handshake: answer one byte so the client sees it.
			_, err = s.Write([]byte{1})
		}
		errc <- err
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := tls.Client(nc, ForHost(cc, host))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	clientErr = c.HandshakeContext(ctx)
	if clientErr == nil {
		var b [1]byte
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, clientErr = c.Read(b[:])
	}
	return clientErr, <-errc
}

// TestHandshakes: a client trusting the CA connects; one trusting
// another CA, or facing an expired certificate or a wrong host name, is
// refused with the reason; with needClientAuth a client without a
// certificate, or with an expired or untrusted one, is refused.
func TestHandshakes(t *testing.T) {
	ca := testcerts.NewCA(t, "good")
	other := testcerts.NewCA(t, "other")
	srv := ca.Issue(t, "broker", testcerts.Options{})
	expired := ca.Issue(t, "broker", testcerts.Options{Expired: true})
	cli := ca.Issue(t, "app", testcerts.Options{Client: true})
	cliExpired := ca.Issue(t, "app", testcerts.Options{Client: true, Expired: true})
	cliOther := other.Issue(t, "app", testcerts.Options{Client: true})

	server := func(m map[string]string) *tls.Config {
		p, err := FromParams(m)
		if err != nil {
			t.Fatal(err)
		}
		c, err := p.Server()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	client := func(m map[string]string) *tls.Config {
		p, err := FromParams(m)
		if err != nil {
			t.Fatal(err)
		}
		c, err := p.Client()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	plain := server(map[string]string{"sslEnabled": "true", "keyStorePath": srv.File})
	for _, tc := range []struct {
		name    string
		sc      *tls.Config
		cc      map[string]string
		host    string
		wantErr string
	}{
		{"trusted", plain, map[string]string{"trustStorePath": ca.File}, "localhost", ""},
		{"untrusted", plain, map[string]string{"trustStorePath": other.File}, "localhost", "certificate signed by unknown authority"},
		{"wrong host", plain, map[string]string{"trustStorePath": ca.File}, "broker.example", "not broker.example"},
		{"wrong host, verifyHost=false", plain, map[string]string{"trustStorePath": ca.File, "verifyHost": "false"}, "broker.example", ""},
		{"expired server", server(map[string]string{"keyStorePath": expired.File}), map[string]string{"trustStorePath": ca.File}, "localhost", "expired"},
		{"expired server, verifyHost=false", server(map[string]string{"keyStorePath": expired.File}), map[string]string{"trustStorePath": ca.File, "verifyHost": "false"}, "localhost", "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cerr, _ := handshake(t, tc.sc, client(tc.cc), tc.host)
			if tc.wantErr == "" && cerr != nil || tc.wantErr != "" && (cerr == nil || !strings.Contains(cerr.Error(), tc.wantErr)) {
				t.Errorf("client: %v, want %q", cerr, tc.wantErr)
			}
		})
	}
	need := server(map[string]string{"keyStorePath": srv.File, "needClientAuth": "true", "trustStorePath": ca.File})
	for _, tc := range []struct {
		name, keyStore, wantServer string
	}{
		{"client certificate", cli.File, ""},
		{"no client certificate", "", "client didn't provide a certificate"},
		{"expired client certificate", cliExpired.File, "expired"},
		// Go's client sends no certificate that the server's authorities
		// did not sign; other clients send it and fail verification.
		{"untrusted client certificate", cliOther.File, "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := map[string]string{"trustStorePath": ca.File}
			if tc.keyStore != "" {
				m["keyStorePath"] = tc.keyStore
			}
			cerr, serr := handshake(t, need, client(m), "localhost")
			if tc.wantServer == "" {
				if cerr != nil || serr != nil {
					t.Errorf("client %v, server %v", cerr, serr)
				}
				return
			}
			if serr == nil || !strings.Contains(serr.Error(), tc.wantServer) || cerr == nil {
				t.Errorf("server %v (want %q), client %v", serr, tc.wantServer, cerr)
			}
		})
	}
}

// TestSessionResumption: a client's second connection to the same server
// resumes its TLS session (the client keeps a session cache; the server
// issues tickets), so a reconnect costs no full handshake.
func TestSessionResumption(t *testing.T) {
	ca := testcerts.NewCA(t, "resume")
	srv := ca.Issue(t, "broker", testcerts.Options{})
	sp, _ := FromParams(map[string]string{"sslEnabled": "true", "keyStorePath": srv.File})
	sc, err := sp.Server()
	if err != nil {
		t.Fatal(err)
	}
	cp, _ := FromParams(map[string]string{"sslEnabled": "true", "trustStorePath": ca.File})
	cc, err := cp.Client()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", sc)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				nc.Write([]byte{1}) // after the handshake: the ticket goes with it
				var b [1]byte
				nc.Read(b[:])
			}()
		}
	}()
	var resumed []bool
	for range 2 {
		c, err := tls.Dial("tcp", ln.Addr().String(), ForHost(cc, "localhost"))
		if err != nil {
			t.Fatal(err)
		}
		var b [1]byte
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(b[:]); err != nil { // reads the session ticket too
			t.Fatal(err)
		}
		resumed = append(resumed, c.ConnectionState().DidResume)
		c.Close()
	}
	if resumed[0] || !resumed[1] {
		t.Fatalf("resumed %v, want [false true]", resumed)
	}
}
