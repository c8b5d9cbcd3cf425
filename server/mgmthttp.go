package server

import (
	"crypto/subtle"
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
)

// The management HTTP API (/api/..., docs/management.md) and the web
// console (/, docs/console.md). Reads are open like /status; operations
// that change something need HTTP basic auth as one of the broker's users
// and a JSON content type (a cross-site form cannot send one without a
// CORS preflight, which is never answered). A broker without users (it
// lets anonymous clients in) is read-only over HTTP: its operations go
// through `tandem queue|address`, authenticated like any client.

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
func registerManagement(mux *http.ServeMux, server func() *Server) {
	for _, rt := range apiRoutes {
		mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) {
			serveAPI(w, r, rt.op, server)
		})
	}
	mux.HandleFunc("GET /api/whoami", func(w http.ResponseWriter, r *http.Request) {
		s := server()
		out := map[string]any{"serving": s != nil, "users": false, "user": nil}
		if s != nil {
			users := s.Users()
			out["users"] = len(users) > 0
			if u, ok := authenticated(r, users); ok {
				out["user"] = u
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

// authenticated returns the user r's basic auth names when its password
// matches.
func authenticated(r *http.Request, users map[string]string) (string, bool) {
	u, p, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	want, known := users[u]
	// Compare anyway, so a wrong user costs what a wrong password does.
	match := subtle.ConstantTimeCompare([]byte(want), []byte(p)) == 1
	return u, known && match
}

// serveAPI runs op for an API request.
func serveAPI(w http.ResponseWriter, r *http.Request, op string, server func() *Server) {
	s := server()
	if s == nil {
		apiError(w, http.StatusServiceUnavailable, op, errors.New("this broker is not serving (a waiting backup, or stopping): ask the live broker's management address"))
		return
	}
	var a ManageArgs
	if !ManageReadOnly(op) {
		users := s.Users()
		if len(users) == 0 {
			apiError(w, http.StatusForbidden, op, errors.New("management operations over HTTP need a user: this broker has none (anonymous clients allowed), so its HTTP API is read-only; configure users, or use `tandem queue`/`tandem address`"))
			return
		}
		if _, ok := authenticated(r, users); !ok {
			if r.Header.Get("X-Requested-With") == "" { // the console asks in its page
				w.Header().Set("WWW-Authenticate", `Basic realm="tandem management", charset="UTF-8"`)
			}
			apiError(w, http.StatusUnauthorized, op, errors.New("authentication required: HTTP basic auth as one of the broker's users"))
			return
		}
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
	res, err := s.Manage(r.Context(), op, a)
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
