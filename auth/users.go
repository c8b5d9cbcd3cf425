package auth

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"

	"golang.org/x/sys/unix"
)

// UsersFileHeader is the first line of a users file: the format and its
// version.
const UsersFileHeader = "tandem-users 1"

// certPrefix marks a user who authenticates with a client certificate:
// cert=SUBJECT (the certificate's subject distinguished name).
const certPrefix = "cert="

// User is one user of the users file.
type User struct {
	Name  string
	Roles []string
	// Hash is the password's argon2id hash (PHC string); "" for a
	// certificate user.
	Hash string
	// CertSubject is the subject DN of the client certificate this user
	// authenticates with ("" for a password user).
	CertSubject string
}

// FileError is a bad line of a users file.
type FileError struct {
	File string
	Line int
	Msg  string
}

func (e *FileError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// maxUsersFile bounds the users file read (a million users' lines).
const maxUsersFile = 256 << 20

// ReadUsersFile reads a users file. A missing file is returned as an
// error satisfying errors.Is(err, fs.ErrNotExist).
func ReadUsersFile(path string) ([]User, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseUsers(path, io.LimitReader(f, maxUsersFile))
}

// ParseUsers reads users file content from r; name is used in errors.
func ParseUsers(name string, r io.Reader) ([]User, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	var users []User
	seen := map[string]int{}
	header := false
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if !header {
			if t != UsersFileHeader {
				if strings.HasPrefix(t, "tandem-users ") {
					return nil, &FileError{name, line, fmt.Sprintf("format %q: this Tandem reads %q (a newer Tandem wrote it?)", t, UsersFileHeader)}
				}
				return nil, &FileError{name, line, fmt.Sprintf("not a Tandem users file: the first line must be %q", UsersFileHeader)}
			}
			header = true
			continue
		}
		u, err := parseUserLine(t)
		if err != nil {
			return nil, &FileError{name, line, err.Error()}
		}
		if l, dup := seen[u.Name]; dup {
			return nil, &FileError{name, line, fmt.Sprintf("user %q defined twice (first at line %d)", u.Name, l)}
		}
		seen[u.Name] = line
		users = append(users, u)
	}
	if err := sc.Err(); err != nil {
		return nil, &FileError{name, line + 1, err.Error()}
	}
	if !header {
		return nil, &FileError{name, max(line, 1), fmt.Sprintf("empty: a users file starts with %q", UsersFileHeader)}
	}
	return users, nil
}

// parseUserLine reads NAME:ROLES:CREDENTIAL.
func parseUserLine(t string) (User, error) {
	name, rest, ok1 := strings.Cut(t, ":")
	roles, cred, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 {
		return User{}, errors.New("want NAME:ROLES:CREDENTIAL")
	}
	u := User{Name: name}
	if err := CheckName(name); err != nil {
		return u, err
	}
	for _, r := range strings.Split(roles, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		if err := CheckRole(r); err != nil {
			return u, fmt.Errorf("user %q: %w", name, err)
		}
		u.Roles = append(u.Roles, r)
	}
	switch {
	case strings.HasPrefix(cred, certPrefix):
		u.CertSubject = strings.TrimSpace(strings.TrimPrefix(cred, certPrefix))
		if u.CertSubject == "" {
			return u, fmt.Errorf("user %q: cert= names no subject", name)
		}
	default:
		if _, err := parsePHC(cred); err != nil {
			return u, fmt.Errorf("user %q: %v", name, err)
		}
		u.Hash = cred
	}
	return u, nil
}

// CheckName reports whether name can be a user name: 1 to 256 bytes of
// printable characters without ':' or white space.
func CheckName(name string) error {
	if name == "" || len(name) > 256 {
		return fmt.Errorf("user name %q: want 1 to 256 characters", name)
	}
	if i := strings.IndexFunc(name, func(r rune) bool { return r == ':' || unicode.IsSpace(r) || !unicode.IsPrint(r) }); i >= 0 {
		return fmt.Errorf("user name %q: no ':', white space or control characters", name)
	}
	return nil
}

// CheckRole reports whether r can be a role name: as a user name, and no
// ','.
func CheckRole(r string) error {
	if err := CheckName(r); err != nil {
		return fmt.Errorf("role %q: want 1 to 256 characters without ':', ',' or white space", r)
	}
	if strings.Contains(r, ",") {
		return fmt.Errorf("role %q: no ','", r)
	}
	return nil
}

// FormatUsers renders users as a users file.
func FormatUsers(users []User) []byte {
	var b bytes.Buffer
	b.WriteString("# Tandem users, written by `tandem user add|rm|passwd` (docs/security.md).\n")
	b.WriteString("# One line per user: NAME:ROLES:CREDENTIAL, the credential an argon2id hash of the\n")
	b.WriteString("# password, or cert=SUBJECT for a user who logs in with a client certificate.\n")
	b.WriteString(UsersFileHeader + "\n")
	for _, u := range users {
		cred := u.Hash
		if u.CertSubject != "" {
			cred = certPrefix + u.CertSubject
		}
		fmt.Fprintf(&b, "%s:%s:%s\n", u.Name, strings.Join(u.Roles, ","), cred)
	}
	return b.Bytes()
}

// WriteUsersFile replaces the users file at path with users, durably: a
// temporary file in the same directory, written and fsynced, renamed over
// path, then the directory fsynced. The file is private to its owner.
func WriteUsersFile(path string, users []User) error {
	for _, u := range users {
		if err := CheckName(u.Name); err != nil {
			return err
		}
		for _, r := range u.Roles {
			if err := CheckRole(r); err != nil {
				return err
			}
		}
		if (u.Hash == "") == (u.CertSubject == "") {
			return fmt.Errorf("user %q: want a password hash or a certificate subject", u.Name)
		}
		if strings.ContainsAny(u.CertSubject, "\r\n") {
			return fmt.Errorf("user %q: the certificate subject holds a line break", u.Name)
		}
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename it is gone
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(FormatUsers(users)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// UpdateUsersFile reads the users file at path (none yet: no users),
// lets edit change the list and writes it back, holding an exclusive
// flock on the file's directory meanwhile, so two `tandem user` commands
// never lose each other's change.
func UpdateUsersFile(path string, edit func([]User) ([]User, error)) error {
	dir := filepath.Dir(path)
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", dir, err)
	}
	defer unix.Flock(int(d.Fd()), unix.LOCK_UN)
	users, err := ReadUsersFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	users, err = edit(slices.Clone(users))
	if err != nil {
		return err
	}
	return WriteUsersFile(path, users)
}
