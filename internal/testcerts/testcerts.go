// Package testcerts makes certificates for tests with crypto/x509: a
// certificate authority, server and client certificates signed by it
// (valid, expired, or from another authority), written as PEM files the
// broker's TLS parameters name.
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// File is the CA certificate as a PEM file (a trust store).
	File string
	dir  string
}

// NewCA makes a certificate authority named name, its PEM file in a
// temporary directory of t.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{CommonName: name, Organization: []string{"Tandem tests"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	dir := t.TempDir()
	ca := &CA{Cert: cert, Key: key, dir: dir, File: filepath.Join(dir, name+"-ca.pem")}
	writePEM(t, ca.File, pem.Block{Type: "CERTIFICATE", Bytes: der})
	return ca
}

// Options shape a certificate.
type Options struct {
	// Expired makes a certificate whose validity ended an hour ago.
	Expired bool
	// Client makes a client certificate (else a server one, for
	// localhost and 127.0.0.1).
	Client bool
	// Hosts replace localhost and 127.0.0.1 in a server certificate.
	Hosts []string
}

// Issued is a certificate and its key.
type Issued struct {
	Cert *x509.Certificate
	// File holds the certificate and its private key (PEM): a key store.
	File string
	// CertFile and KeyFile hold them apart.
	CertFile, KeyFile string
}

// Issue makes a certificate for common name cn signed by ca.
func (ca *CA) Issue(t testing.TB, cn string, o Options) *Issued {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{CommonName: cn, Organization: []string{"Tandem tests"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if o.Expired {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
	}
	if o.Client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		hosts := o.Hosts
		if len(hosts) == 0 {
			hosts = []string{"localhost", "127.0.0.1"}
		}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(ca.dir, cn)
	if o.Expired {
		base += "-expired"
	}
	is := &Issued{Cert: cert, File: base + ".pem", CertFile: base + ".crt", KeyFile: base + ".key"}
	certBlock := pem.Block{Type: "CERTIFICATE", Bytes: der}
	keyBlock := pem.Block{Type: "PRIVATE KEY", Bytes: kder}
	writePEM(t, is.File, certBlock, keyBlock)
	writePEM(t, is.CertFile, certBlock)
	writePEM(t, is.KeyFile, keyBlock)
	return is
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writePEM(t testing.TB, path string, blocks ...pem.Block) {
	t.Helper()
	var out []byte
	for _, b := range blocks {
		out = append(out, pem.EncodeToMemory(&b)...)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}
