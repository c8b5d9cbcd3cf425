package tlsconfig

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"unicode/utf16"
)

// A small PKCS#12 (RFC 7292) reader: what keytool and openssl write.
// Encryption: PBES2 (PBKDF2 with HMAC-SHA-1/256/384/512, AES-128/192/256-
// CBC or 3DES-CBC: keytool since JDK 8u301 and OpenSSL 3), and the older
// pbeWithSHAAnd3-KeyTripleDES-CBC and pbeWithSHAAnd40BitRC2-CBC (older
// keytool and openssl -legacy). Integrity: the HMAC (SHA-1, SHA-256,
// SHA-384, SHA-512) is verified before anything is decrypted, so a wrong
// password is reported as such. Bags: keyBag, pkcs8ShroudedKeyBag,
// certBag (X.509).

var (
	oidData                = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidEncryptedData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 6}
	oidKeyBag              = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 1}
	oidShroudedKeyBag      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 2}
	oidCertBag             = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 3}
	oidX509Certificate     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 22, 1}
	oidPBEWithSHA3DES      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1, 3}
	oidPBEWithSHARC2_40    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1, 6}
	oidPBES2               = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2              = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidPBMAC1              = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 14}
	oidHMACWithSHA1        = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACWithSHA256      = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACWithSHA384      = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACWithSHA512      = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
	oidAES128CBC           = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC           = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC           = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidDESEDE3CBC          = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
	oidSHA1                = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256              = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384              = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512              = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
	errWrongPKCS12Password = errors.New("wrong password (keyStorePassword or trustStorePassword): the PKCS#12 integrity check fails")
)

// maxIterations bounds the key derivation iterations a file may ask for
// (keytool writes 10000, openssl 2048).
const maxIterations = 10_000_000

type pfxPDU struct {
	Version  int
	AuthSafe contentInfo
	MacData  macData `asn1:"optional"`
}

type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"tag:0,explicit,optional"`
}

type macData struct {
	Mac        digestInfo
	MacSalt    []byte
	Iterations int `asn1:"optional,default:1"`
}

type digestInfo struct {
	Algorithm algorithmIdentifier
	Digest    []byte
}

type algorithmIdentifier struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.RawValue `asn1:"optional"`
}

type encryptedData struct {
	Version              int
	EncryptedContentInfo encryptedContentInfo
}

type encryptedContentInfo struct {
	ContentType                asn1.ObjectIdentifier
	ContentEncryptionAlgorithm algorithmIdentifier
	EncryptedContent           []byte `asn1:"tag:0,optional"`
}

type safeBag struct {
	ID         asn1.ObjectIdentifier
	Value      asn1.RawValue     `asn1:"tag:0,explicit"`
	Attributes []pkcs12Attribute `asn1:"set,optional"`
}

type pkcs12Attribute struct {
	ID    asn1.ObjectIdentifier
	Value asn1.RawValue `asn1:"set"`
}

type certBag struct {
	ID   asn1.ObjectIdentifier
	Data []byte `asn1:"tag:0,explicit"`
}

type encryptedPrivateKeyInfo struct {
	Algorithm algorithmIdentifier
	Data      []byte
}

type pbeParams struct {
	Salt       []byte
	Iterations int
}

type pbes2Params struct {
	KDF        algorithmIdentifier
	Encryption algorithmIdentifier
}

type pbkdf2Params struct {
	Salt       asn1.RawValue
	Iterations int
	KeyLength  int                 `asn1:"optional"`
	PRF        algorithmIdentifier `asn1:"optional"`
}

// pkcs12Contents is what a PKCS#12 file holds.
type pkcs12Contents struct {
	keys  []crypto.PrivateKey
	certs []*x509.Certificate
}

// decodePKCS12 reads a PKCS#12 file with password.
func decodePKCS12(der []byte, password string) (*pkcs12Contents, error) {
	var pfx pfxPDU
	rest, err := asn1.Unmarshal(der, &pfx)
	if err != nil {
		return nil, fmt.Errorf("not a PKCS#12 file: %v", err)
	}
	if len(rest) > 0 {
		return nil, errors.New("not a PKCS#12 file: trailing bytes")
	}
	if pfx.Version != 3 {
		return nil, fmt.Errorf("PKCS#12 version %d, want 3", pfx.Version)
	}
	if !pfx.AuthSafe.ContentType.Equal(oidData) {
		return nil, errors.New("PKCS#12 authSafe is not data (public-key integrity mode is not supported)")
	}
	var authSafe []byte
	if _, err := asn1.Unmarshal(pfx.AuthSafe.Content.Bytes, &authSafe); err != nil {
		return nil, fmt.Errorf("PKCS#12 authSafe: %v", err)
	}
	if pfx.MacData.Mac.Algorithm.Algorithm != nil {
		if err := verifyMAC(&pfx.MacData, authSafe, password); err != nil {
			return nil, err
		}
	}
	var infos []contentInfo
	if _, err := asn1.Unmarshal(authSafe, &infos); err != nil {
		return nil, fmt.Errorf("PKCS#12 authenticated safe: %v", err)
	}
	out := &pkcs12Contents{}
	for _, ci := range infos {
		var bagsDER []byte
		switch {
		case ci.ContentType.Equal(oidData):
			if _, err := asn1.Unmarshal(ci.Content.Bytes, &bagsDER); err != nil {
				return nil, fmt.Errorf("PKCS#12 safe contents: %v", err)
			}
		case ci.ContentType.Equal(oidEncryptedData):
			var ed encryptedData
			if _, err := asn1.Unmarshal(ci.Content.Bytes, &ed); err != nil {
				return nil, fmt.Errorf("PKCS#12 encrypted data: %v", err)
			}
			bagsDER, err = pbDecrypt(ed.EncryptedContentInfo.ContentEncryptionAlgorithm, ed.EncryptedContentInfo.EncryptedContent, password)
			if err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("PKCS#12 content type %v is not supported (public-key encryption)", ci.ContentType)
		}
		var bags []safeBag
		if _, err := asn1.Unmarshal(bagsDER, &bags); err != nil {
			return nil, fmt.Errorf("PKCS#12 safe bags: %v", err)
		}
		for _, b := range bags {
			if err := out.add(b, password); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func (c *pkcs12Contents) add(b safeBag, password string) error {
	switch {
	case b.ID.Equal(oidCertBag):
		var cb certBag
		if _, err := asn1.Unmarshal(b.Value.Bytes, &cb); err != nil {
			return fmt.Errorf("PKCS#12 certificate bag: %v", err)
		}
		if !cb.ID.Equal(oidX509Certificate) {
			return nil // an SDSI certificate: not ours to use
		}
		cert, err := x509.ParseCertificate(cb.Data)
		if err != nil {
			return fmt.Errorf("PKCS#12 certificate: %v", err)
		}
		c.certs = append(c.certs, cert)
	case b.ID.Equal(oidKeyBag):
		k, err := x509.ParsePKCS8PrivateKey(b.Value.Bytes)
		if err != nil {
			return fmt.Errorf("PKCS#12 key: %v", err)
		}
		c.keys = append(c.keys, k)
	case b.ID.Equal(oidShroudedKeyBag):
		k, err := decryptPKCS8(b.Value.Bytes, password)
		if err != nil {
			return err
		}
		c.keys = append(c.keys, k)
	}
	// CRL and secret bags, and nested safe contents: nothing TLS uses.
	return nil
}

// decryptPKCS8 decrypts an EncryptedPrivateKeyInfo (a PKCS#12 shrouded
// key bag, or a PEM "ENCRYPTED PRIVATE KEY").
func decryptPKCS8(der []byte, password string) (crypto.PrivateKey, error) {
	var epki encryptedPrivateKeyInfo
	if _, err := asn1.Unmarshal(der, &epki); err != nil {
		return nil, fmt.Errorf("encrypted private key: %v", err)
	}
	plain, err := pbDecrypt(epki.Algorithm, epki.Data, password)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(plain)
	if err != nil {
		return nil, fmt.Errorf("private key (wrong password?): %v", err)
	}
	return k, nil
}

// verifyMAC checks the file's HMAC, keyed from the password by PKCS#12's
// own key derivation (appendix B of RFC 7292).
func verifyMAC(md *macData, content []byte, password string) error {
	alg := md.Mac.Algorithm.Algorithm
	if alg.Equal(oidPBMAC1) {
		return errors.New("PKCS#12 integrity PBMAC1 is not supported: export with -macalg sha256")
	}
	h, ok := digestFor(alg)
	if !ok {
		return fmt.Errorf("PKCS#12 MAC digest %v is not supported", alg)
	}
	if md.Iterations < 1 || md.Iterations > maxIterations {
		return fmt.Errorf("PKCS#12 MAC iterations %d out of range", md.Iterations)
	}
	try := func(pw []byte) bool {
		key := pkcs12KDF(h, pw, md.MacSalt, md.Iterations, 3, h().Size())
		m := hmac.New(h, key)
		m.Write(content)
		return subtle.ConstantTimeCompare(m.Sum(nil), md.Mac.Digest) == 1
	}
	pw := bmpPassword(password)
	if try(pw) || (password == "" && try(nil)) {
		return nil
	}
	return errWrongPKCS12Password
}

func digestFor(oid asn1.ObjectIdentifier) (func() hash.Hash, bool) {
	switch {
	case oid.Equal(oidSHA1):
		return sha1.New, true
	case oid.Equal(oidSHA256):
		return sha256.New, true
	case oid.Equal(oidSHA384):
		return sha512.New384, true
	case oid.Equal(oidSHA512):
		return sha512.New, true
	}
	return nil, false
}

func prfFor(oid asn1.ObjectIdentifier) (func() hash.Hash, bool) {
	switch {
	case oid == nil, oid.Equal(oidHMACWithSHA1):
		return sha1.New, true
	case oid.Equal(oidHMACWithSHA256):
		return sha256.New, true
	case oid.Equal(oidHMACWithSHA384):
		return sha512.New384, true
	case oid.Equal(oidHMACWithSHA512):
		return sha512.New, true
	}
	return nil, false
}

// pbDecrypt decrypts with a password-based scheme.
func pbDecrypt(alg algorithmIdentifier, data []byte, password string) ([]byte, error) {
	var (
		block cipher.Block
		iv    []byte
		err   error
	)
	switch {
	case alg.Algorithm.Equal(oidPBES2):
		block, iv, err = pbes2(alg.Parameters.FullBytes, password)
	case alg.Algorithm.Equal(oidPBEWithSHA3DES), alg.Algorithm.Equal(oidPBEWithSHARC2_40):
		var p pbeParams
		if _, err := asn1.Unmarshal(alg.Parameters.FullBytes, &p); err != nil {
			return nil, fmt.Errorf("PKCS#12 PBE parameters: %v", err)
		}
		if p.Iterations < 1 || p.Iterations > maxIterations {
			return nil, fmt.Errorf("PKCS#12 PBE iterations %d out of range", p.Iterations)
		}
		pw := bmpPassword(password)
		if alg.Algorithm.Equal(oidPBEWithSHA3DES) {
			key := pkcs12KDF(sha1.New, pw, p.Salt, p.Iterations, 1, 24)
			iv = pkcs12KDF(sha1.New, pw, p.Salt, p.Iterations, 2, 8)
			block, err = des.NewTripleDESCipher(key)
		} else {
			key := pkcs12KDF(sha1.New, pw, p.Salt, p.Iterations, 1, 5)
			iv = pkcs12KDF(sha1.New, pw, p.Salt, p.Iterations, 2, 8)
			block = newRC2(key, 40)
		}
	default:
		return nil, fmt.Errorf("PKCS#12 encryption %v is not supported (PBES2 with AES or 3DES, or the PKCS#12 3DES and RC2-40 schemes are)", alg.Algorithm)
	}
	if err != nil {
		return nil, err
	}
	bs := block.BlockSize()
	if len(data) == 0 || len(data)%bs != 0 || len(iv) != bs {
		return nil, errors.New("PKCS#12 encrypted data: not a whole number of blocks")
	}
	out := make([]byte, len(data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, data)
	// PKCS#7 padding; a wrong key shows here.
	n := int(out[len(out)-1])
	if n == 0 || n > bs || n > len(out) {
		return nil, errors.New("PKCS#12 decryption failed (wrong password?)")
	}
	for _, b := range out[len(out)-n:] {
		if int(b) != n {
			return nil, errors.New("PKCS#12 decryption failed (wrong password?)")
		}
	}
	return out[:len(out)-n], nil
}

// pbes2 returns the cipher and IV of PBES2 parameters (RFC 8018).
func pbes2(params []byte, password string) (cipher.Block, []byte, error) {
	var p pbes2Params
	if _, err := asn1.Unmarshal(params, &p); err != nil {
		return nil, nil, fmt.Errorf("PBES2 parameters: %v", err)
	}
	if !p.KDF.Algorithm.Equal(oidPBKDF2) {
		return nil, nil, fmt.Errorf("PBES2 key derivation %v is not supported (PBKDF2 is)", p.KDF.Algorithm)
	}
	var kp pbkdf2Params
	if _, err := asn1.Unmarshal(p.KDF.Parameters.FullBytes, &kp); err != nil {
		return nil, nil, fmt.Errorf("PBKDF2 parameters: %v", err)
	}
	var salt []byte
	if _, err := asn1.Unmarshal(kp.Salt.FullBytes, &salt); err != nil {
		return nil, nil, fmt.Errorf("PBKDF2 salt: %v", err)
	}
	if kp.Iterations < 1 || kp.Iterations > maxIterations {
		return nil, nil, fmt.Errorf("PBKDF2 iterations %d out of range", kp.Iterations)
	}
	prf, ok := prfFor(kp.PRF.Algorithm)
	if !ok {
		return nil, nil, fmt.Errorf("PBKDF2 function %v is not supported", kp.PRF.Algorithm)
	}
	var keyLen int
	enc := p.Encryption.Algorithm
	switch {
	case enc.Equal(oidAES128CBC):
		keyLen = 16
	case enc.Equal(oidAES192CBC):
		keyLen = 24
	case enc.Equal(oidAES256CBC):
		keyLen = 32
	case enc.Equal(oidDESEDE3CBC):
		keyLen = 24
	default:
		return nil, nil, fmt.Errorf("PBES2 cipher %v is not supported (AES-CBC and 3DES-CBC are)", enc)
	}
	var iv []byte
	if _, err := asn1.Unmarshal(p.Encryption.Parameters.FullBytes, &iv); err != nil {
		return nil, nil, fmt.Errorf("PBES2 IV: %v", err)
	}
	key, err := pbkdf2.Key(prf, password, salt, kp.Iterations, keyLen)
	if err != nil {
		return nil, nil, err
	}
	var block cipher.Block
	if enc.Equal(oidDESEDE3CBC) {
		block, err = des.NewTripleDESCipher(key)
	} else {
		block, err = aes.NewCipher(key)
	}
	return block, iv, err
}

// bmpPassword is a password as PKCS#12's own schemes take it: UTF-16
// big-endian with a terminating zero.
func bmpPassword(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 0, 2*len(u)+2)
	for _, r := range u {
		b = append(b, byte(r>>8), byte(r))
	}
	return append(b, 0, 0)
}

// pkcs12KDF is the key derivation of RFC 7292 appendix B.2: id 1 for keys,
// 2 for IVs, 3 for MAC keys.
func pkcs12KDF(h func() hash.Hash, password, salt []byte, iterations int, id byte, size int) []byte {
	hh := h()
	v := hh.BlockSize()
	D := make([]byte, v)
	for i := range D {
		D[i] = id
	}
	fill := func(in []byte) []byte {
		if len(in) == 0 {
			return nil
		}
		n := v * ((len(in) + v - 1) / v)
		out := make([]byte, n)
		for i := range out {
			out[i] = in[i%len(in)]
		}
		return out
	}
	I := append(fill(salt), fill(password)...)
	var out []byte
	one := big.NewInt(1)
	for len(out) < size {
		hh.Reset()
		hh.Write(D)
		hh.Write(I)
		A := hh.Sum(nil)
		for j := 1; j < iterations; j++ {
			hh.Reset()
			hh.Write(A)
			A = hh.Sum(A[:0])
		}
		out = append(out, A...)
		if len(out) >= size {
			break
		}
		// I_j = (I_j + B + 1) mod 2^(8v) for each v-byte block of I.
		B := fill(A)[:v]
		bInt := new(big.Int).SetBytes(B)
		bInt.Add(bInt, one)
		for j := 0; j < len(I); j += v {
			ij := new(big.Int).SetBytes(I[j : j+v])
			ij.Add(ij, bInt)
			b := ij.Bytes()
			if len(b) > v {
				b = b[len(b)-v:]
			}
			blk := I[j : j+v]
			clear(blk)
			copy(blk[v-len(b):], b)
		}
	}
	return out[:size]
}
