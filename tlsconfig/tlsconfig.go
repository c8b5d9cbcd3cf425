// Package tlsconfig builds crypto/tls configurations from Artemis's TLS
// URL parameters (sslEnabled, keyStorePath, keyStoreType, keyStorePassword,
// trustStorePath, trustStoreType, trustStorePassword, needClientAuth,
// wantClientAuth, verifyHost, trustAll, sniHost, enabledProtocols), for
// acceptors (Server) and connectors and clients (Client), and reads the
// stores: PEM files, as Go users keep keys and certificates, and PKCS#12
// keystores, as Artemis users bring them from keytool or openssl
// (pkcs12.go: a small reader, no dependency). JKS is refused with the
// keytool command that converts it.
//
// A key store holds the private key and its certificate chain (PEM: the
// CERTIFICATE blocks, leaf first, and one PRIVATE KEY, RSA PRIVATE KEY, EC
// PRIVATE KEY or ENCRYPTED PRIVATE KEY block, in one file). A trust store
// holds the certificate authorities to trust. The store type is the
// parameter when given, else PEM when the file starts with "-----BEGIN",
// else PKCS12.
//
// TLS 1.2 is the minimum. Clients verify the server's certificate and
// host name (Artemis's verifyHost defaults to false; Tandem's to true) and
// keep a session cache, so reconnects resume their TLS session.
//
// It reads the store files it is given and nothing else; it opens no
// socket.
package tlsconfig

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Params are the TLS parameters of one URL.
type Params struct {
	Enabled                                            bool
	KeyStorePath, KeyStoreType, KeyStorePassword       string
	TrustStorePath, TrustStoreType, TrustStorePassword string
	NeedClientAuth, WantClientAuth                     bool
	// VerifyHost checks that the server's certificate names the host
	// dialled (default true).
	VerifyHost bool
	// TrustAll accepts any server certificate (tests only: it defeats TLS).
	TrustAll bool
	// SNIHost is the server name sent and verified instead of the host.
	SNIHost string
	// MinVersion is the lowest of enabledProtocols (default TLS 1.2).
	MinVersion uint16
}

// Keys are the URL parameter names this package reads.
var Keys = []string{"sslEnabled", "keyStorePath", "keyStoreType", "keyStorePassword", "trustStorePath",
	"trustStoreType", "trustStorePassword", "needClientAuth", "wantClientAuth", "verifyHost", "trustAll",
	"sniHost", "enabledProtocols"}

// FromParams reads the TLS parameters of a URL's query (other keys are
// ignored).
func FromParams(m map[string]string) (Params, error) {
	p := Params{VerifyHost: true, MinVersion: tls.VersionTLS12}
	var err error
	b := func(k string, dst *bool) {
		v, ok := m[k]
		if !ok || err != nil {
			return
		}
		switch strings.ToLower(v) {
		case "true":
			*dst = true
		case "false":
			*dst = false
		default:
			err = fmt.Errorf("%s=%q: want true or false", k, v)
		}
	}
	b("sslEnabled", &p.Enabled)
	b("needClientAuth", &p.NeedClientAuth)
	b("wantClientAuth", &p.WantClientAuth)
	b("verifyHost", &p.VerifyHost)
	b("trustAll", &p.TrustAll)
	if err != nil {
		return p, err
	}
	p.KeyStorePath, p.KeyStorePassword = m["keyStorePath"], m["keyStorePassword"]
	p.TrustStorePath, p.TrustStorePassword = m["trustStorePath"], m["trustStorePassword"]
	p.SNIHost = m["sniHost"]
	for _, k := range []string{"keyStoreType", "trustStoreType"} {
		v := strings.ToUpper(m[k])
		switch v {
		case "", "PEM", "PKCS12":
		case "JKS", "JCEKS":
			return p, fmt.Errorf("%s=%s: Tandem reads PEM and PKCS12 stores; convert with: keytool -importkeystore -srckeystore FILE -destkeystore FILE.p12 -deststoretype PKCS12", k, m[k])
		default:
			return p, fmt.Errorf("%s=%q: want PEM or PKCS12", k, m[k])
		}
		if k == "keyStoreType" {
			p.KeyStoreType = v
		} else {
			p.TrustStoreType = v
		}
	}
	if v := m["enabledProtocols"]; v != "" {
		p.MinVersion = 0
		for _, proto := range strings.Split(v, ",") {
			var ver uint16
			switch strings.TrimSpace(proto) {
			case "TLSv1.2":
				ver = tls.VersionTLS12
			case "TLSv1.3":
				ver = tls.VersionTLS13
			default:
				return p, fmt.Errorf("enabledProtocols=%q: want TLSv1.2 and/or TLSv1.3", v)
			}
			if p.MinVersion == 0 || ver < p.MinVersion {
				p.MinVersion = ver
			}
		}
	}
	return p, nil
}

// Server returns the configuration of an acceptor or HTTP server: the key
// store's certificate, and the trust store's authorities for client
// certificates when needClientAuth or wantClientAuth is set.
func (p Params) Server() (*tls.Config, error) {
	if p.KeyStorePath == "" {
		return nil, errors.New("sslEnabled=true needs keyStorePath (the broker's key and certificate)")
	}
	cert, err := LoadKeyStore(p.KeyStorePath, p.KeyStoreType, p.KeyStorePassword)
	if err != nil {
		return nil, err
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: p.MinVersion}
	if p.NeedClientAuth || p.WantClientAuth {
		if p.TrustStorePath == "" {
			return nil, errors.New("needClientAuth/wantClientAuth need trustStorePath (the authorities of client certificates)")
		}
		pool, err := LoadTrustStore(p.TrustStorePath, p.TrustStoreType, p.TrustStorePassword)
		if err != nil {
			return nil, err
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.VerifyClientCertIfGiven
		if p.NeedClientAuth {
			c.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return c, nil
}

// Client returns the configuration of a connection to a server: the
// trust store's authorities (else the system's), the key store's
// certificate when the server asks for one, host verification and a
// session cache. ServerName is set per connection (ForHost).
func (p Params) Client() (*tls.Config, error) {
	c := &tls.Config{MinVersion: p.MinVersion, ClientSessionCache: tls.NewLRUClientSessionCache(64)}
	if p.TrustStorePath != "" {
		pool, err := LoadTrustStore(p.TrustStorePath, p.TrustStoreType, p.TrustStorePassword)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	if p.KeyStorePath != "" {
		cert, err := LoadKeyStore(p.KeyStorePath, p.KeyStoreType, p.KeyStorePassword)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{cert}
	}
	switch {
	case p.TrustAll:
		c.InsecureSkipVerify = true
	case !p.VerifyHost:
		// Verify the chain, not the name (Artemis's verifyHost=false).
		roots := c.RootCAs
		c.InsecureSkipVerify = true
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tls: the server sent no certificate")
			}
			opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
			for _, ic := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(ic)
			}
			_, err := cs.PeerCertificates[0].Verify(opts)
			return err
		}
	}
	if p.SNIHost != "" {
		c.ServerName = p.SNIHost
	}
	return c, nil
}

// ForHost returns c for a connection to host: c itself when it names its
// server already (sniHost), else a clone with ServerName host. The clone
// shares c's session cache.
func ForHost(c *tls.Config, host string) *tls.Config {
	if c.ServerName != "" {
		return c
	}
	cc := c.Clone()
	cc.ServerName = host
	return cc
}

// LoadKeyStore reads a private key and its certificate chain.
func LoadKeyStore(path, typ, password string) (tls.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("keyStorePath: %w", err)
	}
	var (
		keys  []crypto.PrivateKey
		certs []*x509.Certificate
	)
	switch storeType(typ, data) {
	case "PEM":
		certs, keys, err = readPEM(data, password)
	default:
		var c *pkcs12Contents
		c, err = decodePKCS12(data, password)
		if c != nil {
			certs, keys = c.certs, c.keys
		}
	}
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("keyStorePath %s: %w", path, err)
	}
	if len(keys) == 0 {
		return tls.Certificate{}, fmt.Errorf("keyStorePath %s: no private key in it (a key store holds the key and its certificate; a trust store only certificates)", path)
	}
	if len(keys) > 1 {
		return tls.Certificate{}, fmt.Errorf("keyStorePath %s: %d private keys; want one", path, len(keys))
	}
	key := keys[0]
	pub := publicKey(key)
	var leaf *x509.Certificate
	var chain []*x509.Certificate
	for _, c := range certs {
		if leaf == nil && samePublicKey(c.PublicKey, pub) {
			leaf = c
			continue
		}
		chain = append(chain, c)
	}
	if leaf == nil {
		return tls.Certificate{}, fmt.Errorf("keyStorePath %s: no certificate for its private key", path)
	}
	out := tls.Certificate{PrivateKey: key, Leaf: leaf, Certificate: [][]byte{leaf.Raw}}
	for _, c := range chain {
		out.Certificate = append(out.Certificate, c.Raw)
	}
	return out, nil
}

// LoadTrustStore reads the certificates to trust.
func LoadTrustStore(path, typ, password string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("trustStorePath: %w", err)
	}
	var certs []*x509.Certificate
	switch storeType(typ, data) {
	case "PEM":
		certs, _, err = readPEM(data, "")
	default:
		var c *pkcs12Contents
		c, err = decodePKCS12(data, password)
		if c != nil {
			certs = c.certs
		}
	}
	if err != nil {
		return nil, fmt.Errorf("trustStorePath %s: %w", path, err)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("trustStorePath %s: no certificate in it", path)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// storeType is typ, else what the content looks like.
func storeType(typ string, data []byte) string {
	if typ != "" {
		return strings.ToUpper(typ)
	}
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN")) {
		return "PEM"
	}
	return "PKCS12"
}

// readPEM reads CERTIFICATE blocks and private keys.
func readPEM(data []byte, password string) ([]*x509.Certificate, []crypto.PrivateKey, error) {
	var (
		certs []*x509.Certificate
		keys  []crypto.PrivateKey
	)
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE", "TRUSTED CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("PEM certificate: %v", err)
			}
			certs = append(certs, c)
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("PEM private key: %v", err)
			}
			keys = append(keys, k)
		case "RSA PRIVATE KEY":
			if _, enc := b.Headers["DEK-Info"]; enc {
				return nil, nil, errors.New("PEM: a key encrypted the legacy OpenSSL way (DEK-Info): convert it with openssl pkcs8 -topk8")
			}
			k, err := x509.ParsePKCS1PrivateKey(b.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("PEM RSA private key: %v", err)
			}
			keys = append(keys, k)
		case "EC PRIVATE KEY":
			k, err := x509.ParseECPrivateKey(b.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("PEM EC private key: %v", err)
			}
			keys = append(keys, k)
		case "ENCRYPTED PRIVATE KEY":
			if password == "" {
				return nil, nil, errors.New("PEM: the private key is encrypted: set keyStorePassword")
			}
			k, err := decryptPKCS8(b.Bytes, password)
			if err != nil {
				return nil, nil, fmt.Errorf("PEM encrypted private key: %v", err)
			}
			keys = append(keys, k)
		}
	}
	if len(certs) == 0 && len(keys) == 0 {
		return nil, nil, errors.New("no PEM certificate or key in it")
	}
	return certs, keys, nil
}

func publicKey(k crypto.PrivateKey) crypto.PublicKey {
	if s, ok := k.(crypto.Signer); ok {
		return s.Public()
	}
	return nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	switch x := a.(type) {
	case *rsa.PublicKey:
		return x.Equal(b)
	case *ecdsa.PublicKey:
		return x.Equal(b)
	case ed25519.PublicKey:
		return x.Equal(b)
	}
	return false
}
