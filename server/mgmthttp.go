package server

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/tandemmq/tandem/auth"
)

// The management HTTP API (/api/..., docs/management.md) and the web
// console (/, docs/console.md). Listing and showing is open like /status;
// browsing messages and operations that change something are checked by
// the broker's security (docs/security.md): HTTP basic auth (or a verified
// TLS client certificate) as one of the broker's users, that user's
// permission for the operation, and, for a change, a JSON content type (a
// cross-site form cannot send one without a CORS preflight, which is never
// answered). A broker without users (it lets anonymous clients in) takes
// no change over HTTP: its operations go through `tandem queue|address`,
// authenticated like any client.

//go:embed console
var consoleFiles embed.FS

// route is one API endpoint: an operation and where its arguments come
// from.
type route struct {
	pattern string
	op      string
}

var apiRoutes = []route{
	{"GET /api/addresses", "address.list"},
	{"POST /api/addresses", "address.create"},
	{"GET /api/addresses/{name}", "address.show"},
	{"DELETE /api/addresses/{name}", "address.delete"},
	{"GET /api/queues", "queue.list"},
	{"POST /api/queues", "queue.create"},
	{"GET /api/queues/{name}", "queue.stat"},
	{"DELETE /api/queues/{name}", "queue.delete"},
	{"POST /api/queues/{name}/purge", "queue.purge"},
	{"POST /api/queues/{name}/pause", "queue.pause"},
	{"POST /api/queues/{name}/resume", "queue.resume"},
	{"GET /api/queues/{name}/messages", "queue.browse"},
	{"POST /api/queues/{name}/move", "queue.move"},
	{"GET /api/connections", "connection.list"},
	{"GET /api/consumers", "consumer.list"},
}

// maxAPIBody bounds a request's JSON.
const maxAPIBody = 64 << 10

// registerManagement adds the API and the console to mux; server returns
// the server operations go to (nil: not serving).
func registerManagement(mux *http.ServeMux, server func() *Server, security func() *auth.Guard) {
	for _, rt := range apiRoutes {
		mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) {
			serveAPI(w, r, rt.op, server, security)
		})
	}
	mux.HandleFunc("GET /api/whoami", func(w http.ResponseWriter, r *http.Request) {
		s := server()
		out := map[string]any{"serving": s != nil, "users": false, "user": nil}
		if g := security(); s != nil && g != nil {
			out["users"] = g.Users() > 0
			if sub, ok := httpCredentials(r, g); ok {
				out["user"] = sub.Name()
			}
		}
		writeJSON(w, http.StatusOK, out)
	})
	sub, _ := fs.Sub(consoleFiles, "console")
	files := http.FileServerFS(sub)
	mux.Handle("GET /console/", http.StripPrefix("/console/", files))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		b, err := fs.ReadFile(sub, "index.html")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
		w.Write(b)
	})
}

// httpCredentials logs in the user r's basic auth names, or else whose
// verified TLS client certificate it presents; false when it presents
// neither, or they fail (the guard logged it).
func httpCredentials(r *http.Request, g *auth.Guard) (*auth.Subject, bool) {
	c := auth.Credentials{Remote: r.RemoteAddr, Protocol: "http"}
	u, p, basic := r.BasicAuth()
	if basic {
		c.User, c.Password = u, p
	} else if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		c.Cert = r.TLS.PeerCertificates[0]
	} else {
		return nil, false
	}
	sub, err := g.Login(r.Context(), c)
	if err != nil || sub.Anonymous {
		return nil, false
	}
	return sub, true
}

// serveAPI runs op for an API request.
func serveAPI(w http.ResponseWriter, r *http.Request, op string, server func() *Server, security func() *auth.Guard) {
	s := server()
	if s == nil {
		apiError(w, http.StatusServiceUnavailable, op, errors.New("this broker is not serving (a waiting backup, or stopping): ask the live broker's management address"))
		return
	}
	g := security()
	if g == nil {
		g = auth.NewStatic(nil)
	}
	var a ManageArgs
	// Reads run as the broker's own (like /status); browsing and changes
	// as the user who logged in.
	ctx := asBroker(r.Context())
	if !ManageReadOnly(op) || op == "queue.browse" {
		sub, ok := httpCredentials(r, g)
		switch {
		case ok:
		case !ManageReadOnly(op) && g.Users() == 0:
			apiError(w, http.StatusForbidden, op, errors.New("management operations over HTTP need a user: this broker has none (anonymous clients allowed), so its HTTP API is read-only; add one with `tandem user add`, or use `tandem queue`/`tandem address`"))
			return
		case ManageReadOnly(op) && g.AnonymousAllowed() && r.Header.Get("Authorization") == "":
			sub, _ = g.Login(r.Context(), auth.Credentials{Remote: r.RemoteAddr, Protocol: "http"})
		default:
			if r.Header.Get("X-Requested-With") == "" { // the console asks in its page
				w.Header().Set("WWW-Authenticate", `Basic realm="tandem management", charset="UTF-8"`)
			}
			apiError(w, http.StatusUnauthorized, op, errors.New("authentication required: HTTP basic auth as one of the broker's users"))
			return
		}
		ctx = WithSubject(r.Context(), sub)
	}
	if !ManageReadOnly(op) {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
			apiError(w, http.StatusUnsupportedMediaType, op, errors.New("operations need Content-Type: application/json (even with an empty body)"))
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxAPIBody+1))
		if err == nil && len(body) > maxAPIBody {
			err = fmt.Errorf("request body larger than %d bytes", maxAPIBody)
		}
		if err == nil && len(strings.TrimSpace(string(body))) > 0 {
			dec := json.NewDecoder(strings.NewReader(string(body)))
			dec.DisallowUnknownFields()
			err = dec.Decode(&a)
		}
		if err != nil {
			apiError(w, http.StatusBadRequest, op, fmt.Errorf("request body: %w", err))
			return
		}
	}
	if name := r.PathValue("name"); name != "" {
		a.Name = name
	}
	q := r.URL.Query()
	for _, p := range []struct {
		key string
		dst *int
	}{{"offset", &a.Offset}, {"limit", &a.Limit}, {"preview", &a.Preview}} {
		if v := q.Get(p.key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				apiError(w, http.StatusBadRequest, op, fmt.Errorf("%s=%q: want a number >= 0", p.key, v))
				return
			}
			*p.dst = n
		}
	}
	if v := q.Get("prefix"); v != "" {
		a.Prefix = v
	}
	res, err := s.Manage(ctx, op, a)
	if err != nil {
		apiError(w, manageStatus(err), op, err)
		return
	}
	status := http.StatusOK
	if r.Method == http.MethodPost && (op == "queue.create" || op == "address.create") {
		status = http.StatusCreated
	}
	writeJSON(w, status, res)
}

// apiError answers {"error": ..., "op": ...}.
func apiError(w http.ResponseWriter, status int, op string, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error(), "op": op})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}
