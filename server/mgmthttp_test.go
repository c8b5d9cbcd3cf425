package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tandemmq/tandem/wire"
)

// api is a management handler for b's server under test.
type api struct {
	t *testing.T
	h http.Handler
}

func (a api) do(method, path, user, body string, contentType string) (int, map[string]any, http.Header) {
	a.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if user != "" {
		u, p, _ := strings.Cut(user, ":")
		req.SetBasicAuth(u, p)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, req)
	var out map[string]any
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		var v any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			a.t.Fatalf("%s %s: bad JSON %q: %v", method, path, rec.Body.String(), err)
		}
		out, _ = v.(map[string]any)
		if out == nil {
			out = map[string]any{"list": v}
		}
	}
	return rec.Code, out, rec.Header()
}

// TestManagementAPIAuth: reads are open; operations need a user of the
// broker and a JSON content type; a broker without users is read-only.
func TestManagementAPIAuth(t *testing.T) {
	b := newBroker(t, Options{})
	a := api{t, ManagementHandler(ManagementOptions{Status: b.s.Status})}
	const js = "application/json"

	// No acceptor with users yet: anonymous broker, read-only over HTTP.
	if code, body, _ := a.do("POST", "/api/queues", "", `{"name":"q"}`, js); code != http.StatusForbidden {
		t.Fatalf("operation on a broker without users: %d %v, want 403", code, body)
	}
	if code, _, _ := a.do("GET", "/api/queues", "", "", ""); code != http.StatusOK {
		t.Fatalf("read on a broker without users: %d, want 200", code)
	}

	listen(t, b, NetOptions{Users: map[string]string{"admin": "secret"}})
	code, _, hdr := a.do("POST", "/api/queues", "", `{"name":"q"}`, js)
	if code != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("without credentials: %d %q, want 401 with a Basic challenge", code, hdr.Get("WWW-Authenticate"))
	}
	if code, _, _ := a.do("POST", "/api/queues", "admin:wrong", `{"name":"q"}`, js); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d, want 401", code)
	}
	if code, _, _ := a.do("POST", "/api/queues", "admin:secret", `{"name":"q"}`, "application/x-www-form-urlencoded"); code != http.StatusUnsupportedMediaType {
		t.Fatalf("form content type: %d, want 415", code)
	}
	if code, body, _ := a.do("POST", "/api/queues", "admin:secret", `{"name":"q","bogus":1}`, js); code != http.StatusBadRequest {
		t.Fatalf("unknown field: %d %v, want 400", code, body)
	}
	code, body, _ := a.do("POST", "/api/queues", "admin:secret", `{"name":"q","routing":"anycast"}`, js)
	if code != http.StatusCreated || body["name"] != "q" || body["durable"] != true {
		t.Fatalf("create: %d %v", code, body)
	}
	if code, body, _ := a.do("POST", "/api/queues", "admin:secret", `{"name":"q","routing":"multicast"}`, js); code != http.StatusConflict {
		t.Fatalf("create with another routing: %d %v, want 409", code, body)
	}

	ss := b.s.NewSession(false)
	mustSend(t, ss, queueDest("q"), &Message{Durable: true, Body: []byte("hello"),
		Properties: []Property{wire.StringProp("k", "v"), wire.Int64Prop("n", 7)}})
	// Message contents need a user (the browse permission) on a broker
	// that has users.
	if code, _, _ := a.do("GET", "/api/queues/q/messages?limit=5", "", "", ""); code != http.StatusUnauthorized {
		t.Fatalf("browse without credentials: %d, want 401", code)
	}
	code, body, _ = a.do("GET", "/api/queues/q/messages?limit=5", "admin:secret", "", "")
	msgs, _ := body["messages"].([]any)
	if code != http.StatusOK || body["total"] != float64(1) || len(msgs) != 1 {
		t.Fatalf("browse: %d %v", code, body)
	}
	m := msgs[0].(map[string]any)
	props, _ := m["properties"].(map[string]any)
	if m["body_preview"] != "hello" || props["k"] != "v" || props["n"] != float64(7) {
		t.Fatalf("browsed message: %v", m)
	}
	for _, p := range []string{"/pause", "/resume", "/purge"} {
		if code, body, _ := a.do("POST", "/api/queues/q"+p, "admin:secret", "", js); code != http.StatusOK {
			t.Fatalf("%s: %d %v", p, code, body)
		}
	}
	if code, body, _ := a.do("GET", "/api/queues/q", "", "", ""); code != http.StatusOK || body["depth"] != float64(0) || body["acknowledged"] != float64(1) {
		t.Fatalf("stat after purge: %d %v", code, body)
	}
	if code, _, _ := a.do("GET", "/api/queues/nope", "", "", ""); code != http.StatusNotFound {
		t.Fatalf("missing queue: %d, want 404", code)
	}
	if code, _, _ := a.do("GET", "/api/queues/q/messages?limit=x", "admin:secret", "", ""); code != http.StatusBadRequest {
		t.Fatalf("bad limit: %d, want 400", code)
	}
	if code, body, _ := a.do("DELETE", "/api/queues/q", "admin:secret", "", js); code != http.StatusOK {
		t.Fatalf("delete: %d %v", code, body)
	}
	if code, body, _ := a.do("GET", "/api/whoami", "admin:secret", "", ""); code != http.StatusOK || body["user"] != "admin" || body["users"] != true {
		t.Fatalf("whoami: %d %v", code, body)
	}
}

// TestManagementAPINotServing: a status without a server behind it (a
// waiting backup's) answers operations and reads with 503.
func TestManagementAPINotServing(t *testing.T) {
	a := api{t, ManagementHandler(ManagementOptions{Status: func() Status { return Status{Role: "backup", State: "waiting"} }})}
	if code, body, _ := a.do("GET", "/api/queues", "", "", ""); code != http.StatusServiceUnavailable || !strings.Contains(body["error"].(string), "not serving") {
		t.Fatalf("not serving: %d %v", code, body)
	}
}

// TestConsoleServed: the console's page and its files come from the
// binary, with no reference to another origin.
func TestConsoleServed(t *testing.T) {
	b := newBroker(t, Options{})
	h := ManagementHandler(ManagementOptions{Status: b.s.Status})
	for _, p := range []string{"/", "/console/console.js", "/console/console.css"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		body := rec.Body.String()
		if rec.Code != http.StatusOK || len(body) < 100 {
			t.Fatalf("GET %s: %d, %d bytes", p, rec.Code, len(body))
		}
		for _, ext := range []string{"http://", "https://", "//cdn"} {
			if strings.Contains(body, ext) {
				t.Errorf("GET %s refers to %q: the console must work offline", p, ext)
			}
		}
	}
}

// TestManageOverWire: a client connection's Manage frame runs the same
// operations, authenticated as the client was.
func TestManageOverWire(t *testing.T) {
	b := newBroker(t, Options{})
	acc := listen(t, b, NetOptions{})
	c := dial(t, acc, "", "")
	c.write(c.next(), &wire.Manage{Op: "queue.create", Args: []byte(`{"name":"w","routing":"multicast","address":"wa"}`)})
	r := c.expect(wire.TypeManageResult).(*wire.ManageResult)
	var qi QueueInfo
	if r.Code != wire.CodeOK || json.Unmarshal(r.Body, &qi) != nil || qi.Address != "wa" || qi.Routing != "multicast" {
		t.Fatalf("queue.create: %v %q %s", r.Code, r.Message, r.Body)
	}
	c.write(c.next(), &wire.Manage{Op: "connection.list"})
	r = c.expect(wire.TypeManageResult).(*wire.ManageResult)
	var conns []ConnectionInfo
	if r.Code != wire.CodeOK || json.Unmarshal(r.Body, &conns) != nil || len(conns) != 1 || conns[0].ClientID != "test" || conns[0].Protocol != "core" {
		t.Fatalf("connection.list: %v %q %s", r.Code, r.Message, r.Body)
	}
	c.write(c.next(), &wire.Manage{Op: "queue.purge", Args: []byte(`{"name":"nope"}`)})
	if r := c.expect(wire.TypeManageResult).(*wire.ManageResult); r.Code != wire.CodeNotFound {
		t.Fatalf("purge of a missing queue: %v %q", r.Code, r.Message)
	}
	c.write(c.next(), &wire.Manage{Op: "queue.purge", Args: []byte(`{"name":`)})
	if r := c.expect(wire.TypeManageResult).(*wire.ManageResult); r.Code != wire.CodeInvalid {
		t.Fatalf("bad JSON: %v %q", r.Code, r.Message)
	}
}
