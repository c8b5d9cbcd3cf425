package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters of new hashes: OWASP's recommendation (19 MiB, two
// passes, one lane), about 100 ms on a loaded two-core machine.
const (
	hashMemoryKiB = 19 * 1024
	hashPasses    = 2
	hashLanes     = 1
	saltLen       = 16
	keyLen        = 32
)

// Bounds on the parameters of a hash read from a users file: a damaged or
// hostile file cannot make a login take a gigabyte or a minute.
const (
	maxHashMemoryKiB = 256 * 1024
	maxHashPasses    = 16
	maxHashLanes     = 16
)

// MaxConcurrentHashes is how many password hashes a process computes at
// once (each takes hashMemoryKiB of memory); other logins wait their turn.
var MaxConcurrentHashes = max(2, runtime.NumCPU())

var hashSlots = make(chan struct{}, MaxConcurrentHashes)

// ErrBadHash reports a credential that is not a hash this package reads.
var ErrBadHash = errors.New("auth: not an argon2id hash ($argon2id$v=19$m=...,t=...,p=...$salt$hash)")

// HashPassword returns the argon2id hash of password in the PHC string
// format, with a fresh random salt.
func HashPassword(password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("auth: salt: %w", err)
	}
	p := phc{memory: hashMemoryKiB, passes: hashPasses, lanes: hashLanes, salt: salt}
	p.key = p.derive(password, keyLen)
	return p.String(), nil
}

// VerifyPassword reports whether password matches hash (a PHC argon2id
// string); an error means the hash itself is malformed.
func VerifyPassword(hash, password string) (bool, error) {
	p, err := parsePHC(hash)
	if err != nil {
		return false, err
	}
	got := p.derive(password, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(got, p.key) == 1, nil
}

// phc is a parsed argon2id hash.
type phc struct {
	memory    uint32 // KiB
	passes    uint32
	lanes     uint8
	salt, key []byte
}

// derive computes the key, holding one of the process's hash slots.
func (p phc) derive(password string, n uint32) []byte {
	hashSlots <- struct{}{}
	defer func() { <-hashSlots }()
	return argon2.IDKey([]byte(password), p.salt, p.passes, p.memory, p.lanes, n)
}

func (p phc) String() string {
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.memory, p.passes, p.lanes,
		enc.EncodeToString(p.salt), enc.EncodeToString(p.key))
}

// parsePHC reads "$argon2id$v=19$m=M,t=T,p=P$SALT$HASH" and bounds its
// parameters.
func parsePHC(s string) (phc, error) {
	var p phc
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, ErrBadHash
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, fmt.Errorf("auth: argon2id version %q, want v=%d", parts[2], argon2.Version)
	}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return p, fmt.Errorf("auth: argon2id parameter %q: %w", kv, ErrBadHash)
		}
		switch k {
		case "m":
			p.memory = uint32(n)
		case "t":
			p.passes = uint32(n)
		case "p":
			if n > 255 {
				n = 0 // out of range, refused below
			}
			p.lanes = uint8(n)
		default:
			return p, fmt.Errorf("auth: argon2id parameter %q: %w", kv, ErrBadHash)
		}
	}
	switch {
	case p.lanes < 1 || p.lanes > maxHashLanes:
		return p, fmt.Errorf("auth: argon2id p=%d out of range [1, %d]", p.lanes, maxHashLanes)
	case p.passes < 1 || p.passes > maxHashPasses:
		return p, fmt.Errorf("auth: argon2id t=%d out of range [1, %d]", p.passes, maxHashPasses)
	case p.memory < 8*uint32(p.lanes) || p.memory > maxHashMemoryKiB:
		return p, fmt.Errorf("auth: argon2id m=%d KiB out of range [%d, %d]", p.memory, 8*uint32(p.lanes), maxHashMemoryKiB)
	}
	var err error
	enc := base64.RawStdEncoding
	if p.salt, err = enc.DecodeString(parts[4]); err != nil || len(p.salt) < 8 || len(p.salt) > 64 {
		return p, fmt.Errorf("auth: argon2id salt: want 8 to 64 bytes of unpadded base64")
	}
	if p.key, err = enc.DecodeString(parts[5]); err != nil || len(p.key) < 16 || len(p.key) > 64 {
		return p, fmt.Errorf("auth: argon2id hash: want 16 to 64 bytes of unpadded base64")
	}
	return p, nil
}

// dummyHash is verified against when the user is unknown, so that an
// unknown user costs what a wrong password does.
var dummyHash = phc{memory: hashMemoryKiB, passes: hashPasses, lanes: hashLanes,
	salt: make([]byte, saltLen), key: make([]byte, keyLen)}
