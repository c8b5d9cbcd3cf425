package auth

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemmq/tandem/config"
)

func TestHashRoundTrip(t *testing.T) {
	h, err := HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(h, "s3cret") {
		t.Fatalf("hash %q", h)
	}
	for pw, want := range map[string]bool{"s3cret": true, "s3cret ": false, "": false, "S3cret": false} {
		ok, err := VerifyPassword(h, pw)
		if err != nil || ok != want {
			t.Errorf("verify %q: %v %v, want %v", pw, ok, err, want)
		}
	}
	h2, _ := HashPassword("s3cret")
	if h2 == h {
		t.Error("two hashes of one password are equal: no salt")
	}
}

// TestHashBounds: a hash whose parameters would cost too much, or that is
// malformed, is an error, never a panic or a gigabyte.
func TestHashBounds(t *testing.T) {
	for _, h := range []string{
		"", "plain", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=16$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=19456,t=1000,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=19456,t=2,p=0$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=19456,t=2,p=300$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=19456,t=2,p=1$!!$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
		"$argon2id$v=19$m=19456,t=2,x=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
	} {
		if _, err := VerifyPassword(h, "x"); err == nil {
			t.Errorf("%q accepted", h)
		}
	}
}

func TestUsersFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	h, _ := HashPassword("pw")
	err := UpdateUsersFile(path, func(us []User) ([]User, error) {
		if len(us) != 0 {
			t.Errorf("new file has users %v", us)
		}
		return append(us, User{Name: "alice", Roles: []string{"admin", "amq"}, Hash: h},
			User{Name: "dev", CertSubject: "CN=dev,O=Example"}), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode())
	}
	us, err := ReadUsersFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(us) != 2 || us[0].Name != "alice" || strings.Join(us[0].Roles, ",") != "admin,amq" || us[0].Hash != h ||
		us[1].CertSubject != "CN=dev,O=Example" {
		t.Fatalf("read %+v", us)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".users.tmp*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestUsersFileErrors: each bad file is an error naming the file and line.
func TestUsersFileErrors(t *testing.T) {
	h, _ := HashPassword("pw")
	for _, tc := range []struct{ content, want string }{
		{"", "users:1: empty"},
		{"alice::" + h + "\n", "users:1: not a Tandem users file"},
		{"tandem-users 2\n", "users:1: format \"tandem-users 2\""},
		{"tandem-users 1\nalice:amq\n", "users:2: want NAME:ROLES:CREDENTIAL"},
		{"tandem-users 1\nal ice:amq:" + h + "\n", "users:2: user name"},
		{"tandem-users 1\nalice:amq:secret\n", "users:2: user \"alice\": auth: not an argon2id hash"},
		{"tandem-users 1\n# c\nalice:amq:" + h + "\nalice::" + h + "\n", "users:4: user \"alice\" defined twice (first at line 3)"},
		{"tandem-users 1\nbob::cert=\n", "users:2: user \"bob\": cert= names no subject"},
	} {
		_, err := ParseUsers("users", strings.NewReader(tc.content))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.content, err, tc.want)
		}
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func writeUsers(t *testing.T, path string, users ...User) {
	t.Helper()
	if err := WriteUsersFile(path, users); err != nil {
		t.Fatal(err)
	}
}

func hashed(t *testing.T, name, pw string, roles ...string) User {
	t.Helper()
	h, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	return User{Name: name, Roles: roles, Hash: h}
}

func settings(t *testing.T, xml string) config.SecuritySettings {
	t.Helper()
	c, _, err := config.Parse("b.xml", strings.NewReader(`<configuration><core><security-settings>`+xml+`</security-settings></core></configuration>`))
	if err != nil {
		t.Fatal(err)
	}
	return c.Security.Settings
}

// TestLoginAndAuthorize: a user of the users file logs in with the right
// password only; its permissions follow the most specific setting; a
// removed user loses them within the invalidation interval, and a new
// password works without a restart.
func TestLoginAndAuthorize(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users")
	writeUsers(t, path, hashed(t, "alice", "pw", "app"), hashed(t, "ops", "x", "admin"))
	ck := &clock{t: time.Unix(1000, 0)}
	var logs bytes.Buffer
	g, err := New(Options{UsersFile: path, SettingsSet: true, Interval: time.Second, Now: ck.now,
		Settings: settings(t, `<security-setting match="#"><permission type="manage" roles="admin"/><permission type="send" roles="admin"/></security-setting>
		  <security-setting match="orders.#"><permission type="send" roles="app"/><permission type="consume" roles="app"/></security-setting>`),
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if g.AnonymousAllowed() {
		t.Error("users exist, yet anonymous clients are let in")
	}
	if _, err := g.Login(ctx, Credentials{Remote: "10.0.0.1:5"}); !errors.Is(err, ErrLogin) {
		t.Errorf("no credentials: %v", err)
	}
	if _, err := g.Login(ctx, Credentials{User: "alice", Password: "nope", Remote: "10.0.0.1:5"}); !errors.Is(err, ErrLogin) ||
		!strings.Contains(err.Error(), `user "alice": wrong user name or password`) {
		t.Errorf("wrong password: %v", err)
	}
	if _, err := g.Login(ctx, Credentials{User: "mallory", Password: "pw", Remote: "10.0.0.1:5"}); !errors.Is(err, ErrLogin) {
		t.Errorf("unknown user: %v", err)
	}
	s, err := g.Login(ctx, Credentials{User: "alice", Password: "pw", Remote: "10.0.0.2:5"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p    Permission
		addr string
		ok   bool
	}{
		{Send, "orders", true}, {Send, "orders.eu", true}, {Consume, "orders.eu", true},
		{Send, "payments", false}, {Manage, "orders", false}, {CreateDurableQueue, "orders", false},
	} {
		err := s.Authorize(tc.p, tc.addr)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrDenied)) {
			t.Errorf("%s on %s: %v, want allowed=%v", tc.p, tc.addr, err, tc.ok)
		}
	}
	if err := s.Authorize(Send, "payments"); err == nil || !strings.Contains(err.Error(), `user "alice" may not send on address "payments"`) {
		t.Errorf("denial message: %v", err)
	}
	if strings.Contains(logs.String(), "pw") && strings.Contains(logs.String(), "nope") {
		t.Errorf("a password reached the log:\n%s", logs.String())
	}

	// Change alice's password and remove ops; within the interval the
	// old state holds (cached), after it the new.
	writeUsers(t, path, hashed(t, "alice", "new", "app"))
	bump := time.Now().Add(time.Second) // the file's mtime must change even on coarse clocks
	os.Chtimes(path, bump, bump)
	if err := s.Authorize(Send, "orders"); err != nil {
		t.Errorf("within the interval: %v", err)
	}
	ck.add(2 * time.Second)
	if _, err := g.Login(ctx, Credentials{User: "alice", Password: "pw", Remote: "10.0.0.2:5"}); err == nil {
		t.Error("the old password still works after the interval")
	}
	if _, err := g.Login(ctx, Credentials{User: "alice", Password: "new", Remote: "10.0.0.2:5"}); err != nil {
		t.Errorf("the new password: %v", err)
	}
	so, _ := g.Login(ctx, Credentials{User: "alice", Password: "new"})
	if _, err := g.Login(ctx, Credentials{User: "ops", Password: "x"}); err == nil {
		t.Error("a removed user logs in")
	}
	if so == nil {
		t.Fatal("no subject")
	}
	if !strings.Contains(logs.String(), "users file reloaded") {
		t.Errorf("no reload logged:\n%s", logs.String())
	}
}

// TestRemovedUserLosesPermissions: a connection open as a user who is then
// removed is refused everything after the interval.
func TestRemovedUserLosesPermissions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	writeUsers(t, path, hashed(t, "bob", "pw", "app"))
	ck := &clock{t: time.Unix(1000, 0)}
	g, err := New(Options{UsersFile: path, SettingsSet: true, Interval: time.Second, Now: ck.now,
		Settings: settings(t, `<security-setting match="#"><permission type="send" roles="app"/></security-setting>`)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := g.Login(context.Background(), Credentials{User: "bob", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Authorize(Send, "q"); err != nil {
		t.Fatal(err)
	}
	writeUsers(t, path)
	bump := time.Now().Add(time.Second)
	os.Chtimes(path, bump, bump)
	ck.add(2 * time.Second)
	if err := s.Authorize(Send, "q"); err == nil || !strings.Contains(err.Error(), "no longer exists") {
		t.Errorf("removed user: %v", err)
	}
}

// TestAnonymousAndRequireLogin: without users, and require-login unset,
// clients without credentials are let in (the older behaviour);
// require-login true refuses them even then; false lets them in with the
// anonymous roles beside users.
func TestAnonymousAndRequireLogin(t *testing.T) {
	ctx := context.Background()
	yes, no := true, false
	g, _ := New(Options{})
	if s, err := g.Login(ctx, Credentials{}); err != nil || !s.Anonymous {
		t.Errorf("no users: %v", err)
	}
	g, _ = New(Options{RequireLogin: &yes})
	if _, err := g.Login(ctx, Credentials{}); err == nil || !strings.Contains(err.Error(), "requires a user name and password") {
		t.Errorf("require-login without users: %v", err)
	}
	g, _ = New(Options{RequireLogin: &no, AnonymousRoles: []string{"guest"}, Users: []config.User{{Name: "a", Password: "b"}},
		SettingsSet: true, Settings: settings(t, `<security-setting match="#"><permission type="consume" roles="guest"/></security-setting>`)})
	s, err := g.Login(ctx, Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Authorize(Consume, "x") != nil || s.Authorize(Send, "x") == nil {
		t.Error("anonymous roles not applied")
	}
	if _, err := g.Login(ctx, Credentials{User: "a", Password: "wrong"}); err == nil {
		t.Error("wrong credentials fall back to anonymous")
	}
}

// TestClusterUser: the cluster user logs in (and ClusterLogin passes it
// only) but holds no role: with settings it may do nothing as a client.
func TestClusterUser(t *testing.T) {
	ctx := context.Background()
	g, _ := New(Options{ClusterUser: "cu", ClusterPassword: "cp", Users: []config.User{{Name: "a", Password: "b"}},
		SettingsSet: true, Settings: settings(t, `<security-setting match="#"><permission type="send" roles="amq"/></security-setting>`)})
	s, err := g.Login(ctx, Credentials{User: "cu", Password: "cp"})
	if err != nil || !s.Cluster {
		t.Fatalf("cluster login: %v", err)
	}
	if s.Authorize(Send, "q") == nil {
		t.Error("the cluster user may send as a client")
	}
	if err := g.ClusterLogin(ctx, Credentials{User: "cu", Password: "cp"}); err != nil {
		t.Error(err)
	}
	for _, c := range []Credentials{{User: "a", Password: "b"}, {User: "cu", Password: "x"}, {}} {
		if err := g.ClusterLogin(ctx, c); err == nil {
			t.Errorf("cluster login as %q passed", c.User)
		}
	}
}

// TestCertificateUser: a verified client certificate whose subject is a
// user's logs in as that user, whatever the DN's spelling.
func TestCertificateUser(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	writeUsers(t, path, User{Name: "dev", Roles: []string{"app"}, CertSubject: "O=Example, CN=dev"})
	g, err := New(Options{UsersFile: path})
	if err != nil {
		t.Fatal(err)
	}
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "dev", Organization: []string{"Example"}}}
	s, err := g.Login(context.Background(), Credentials{Cert: cert})
	if err != nil || s.User != "dev" || !s.Cert {
		t.Fatalf("certificate login: %+v %v", s, err)
	}
	other := &x509.Certificate{Subject: pkix.Name{CommonName: "eve"}}
	if _, err := g.Login(context.Background(), Credentials{Cert: other}); err == nil || !strings.Contains(err.Error(), "is no user's") {
		t.Errorf("unknown certificate: %v", err)
	}
	// A certificate user has no password.
	if _, err := g.Login(context.Background(), Credentials{User: "dev", Password: ""}); err == nil {
		t.Error("a certificate user logged in without a certificate")
	}
}

// TestThrottleGrows: after the free failures each failure doubles the
// delay before the next check of that host, up to the maximum; other
// hosts are not slowed; a throttled host with too many logins waiting is
// refused at once; the failures are forgotten after a quiet period.
func TestThrottleGrows(t *testing.T) {
	ck := &clock{t: time.Unix(1000, 0)}
	th := newThrottle(ThrottleOptions{FreeFailures: 2, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second, MaxWaiting: 1, Forget: time.Minute}, ck.now)
	var got []time.Duration
	for range 7 {
		_, d := th.failed("h1")
		got = append(got, d)
	}
	want := []time.Duration{0, 0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays %v, want %v", got, want)
		}
	}
	// Another host goes straight through.
	rel, err := th.wait(context.Background(), "h2")
	if err != nil {
		t.Fatal(err)
	}
	rel()
	// h1 waits (the fake clock stands still: its turn comes after the
	// real timer); a second waiter beyond MaxWaiting is refused at once.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		_, err := th.wait(ctx, "h1")
		errc <- err
	}()
	<-started
	deadline := time.Now().Add(10 * time.Second)
	for {
		th.mu.Lock()
		w := th.hosts["h1"].waiting
		th.mu.Unlock()
		if w == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first login never waited")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := th.wait(context.Background(), "h1"); err == nil || !strings.Contains(err.Error(), "too many failed logins from h1 (7)") {
		t.Errorf("second waiter: %v", err)
	}
	cancel()
	if err := <-errc; err == nil {
		t.Error("a cancelled wait succeeded")
	}
	ck.add(2 * time.Minute)
	rel, err = th.wait(context.Background(), "h1")
	if err != nil {
		t.Fatalf("after the quiet period: %v", err)
	}
	rel()
	if n, _ := th.failed("h1"); n != 1 {
		t.Errorf("failures after the quiet period: %d, want 1", n)
	}
}

// TestLoginFailuresLoggedRateLimited: failures are logged with the user
// and remote address, never the password, and at most logBurst lines per
// window.
func TestLoginFailuresLoggedRateLimited(t *testing.T) {
	var logs bytes.Buffer
	ck := &clock{t: time.Unix(1000, 0)}
	g, _ := New(Options{Users: []config.User{{Name: "a", Password: "right"}}, Now: ck.now,
		Throttle: ThrottleOptions{FreeFailures: 1000}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for range 30 {
		if _, err := g.Login(context.Background(), Credentials{User: "a", Password: "hunter2-wrong", Remote: "192.0.2.7:4000", Protocol: "core"}); err == nil {
			t.Fatal("wrong password accepted")
		}
	}
	out := logs.String()
	if n := strings.Count(out, "login failed"); n != logBurst {
		t.Errorf("%d lines logged, want %d:\n%s", n, logBurst, out)
	}
	if strings.Contains(out, "hunter2") || strings.Contains(out, "right") {
		t.Errorf("a password reached the log:\n%s", out)
	}
	if !strings.Contains(out, "remote=192.0.2.7:4000") || !strings.Contains(out, "user=a") {
		t.Errorf("the log does not say who:\n%s", out)
	}
	ck.add(logWindow)
	g.Login(context.Background(), Credentials{User: "a", Password: "x", Remote: "192.0.2.7:4000"})
	if !strings.Contains(logs.String(), "suppressed_before=20") {
		t.Errorf("suppressed count not logged:\n%s", logs.String())
	}
}

func TestNormalizeDN(t *testing.T) {
	for _, pair := range [][2]string{
		{"CN=dev,O=Example", "O=Example, CN=dev"},
		{"cn=dev, o=Example", "CN=dev,O=Example"},
		{`CN=a\,b,O=X`, `O=X,CN=a\,b`},
	} {
		if normalizeDN(pair[0]) != normalizeDN(pair[1]) {
			t.Errorf("%q and %q differ: %q %q", pair[0], pair[1], normalizeDN(pair[0]), normalizeDN(pair[1]))
		}
	}
	if normalizeDN("CN=dev,O=A") == normalizeDN("CN=dev,O=B") {
		t.Error("different DNs compare equal")
	}
}

// FuzzLogin: any credentials and remote address get an answer, never a
// panic; only the right password of a known user passes.
func FuzzLogin(f *testing.F) {
	f.Add("alice", "pw", "1.2.3.4:5")
	f.Add("", "", "")
	f.Add("alice\x00", "pw\x00", "[::1]:80")
	f.Add(strings.Repeat("x", 70000), "p", "garbage")
	g, _ := New(Options{Users: []config.User{{Name: "alice", Password: "pw"}}, ClusterUser: "cu", ClusterPassword: "cp",
		Throttle: ThrottleOptions{FreeFailures: 1 << 30}})
	f.Fuzz(func(t *testing.T, user, password, remote string) {
		s, err := g.Login(context.Background(), Credentials{User: user, Password: password, Remote: remote})
		ok := (user == "alice" && password == "pw") || (user == "cu" && password == "cp")
		if (err == nil) != ok {
			t.Fatalf("Login(%q, %q) = %v, want ok=%v", user, password, err, ok)
		}
		if err == nil && s == nil {
			t.Fatal("no subject")
		}
		if err != nil && user != "" {
			// The message must not depend on the password.
			_, other := g.Login(context.Background(), Credentials{User: user, Password: password + "\x01", Remote: remote})
			if other == nil || other.Error() != err.Error() {
				t.Fatalf("the error depends on the password: %v / %v", err, other)
			}
		}
	})
}
