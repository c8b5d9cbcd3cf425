package jdbcstore

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// jdbcOnly are pgJDBC connection properties that have no libpq equivalent.
// They are dropped (and reported) instead of being sent to the server as
// run-time parameters, which PostgreSQL would refuse.
var jdbcOnly = map[string]bool{
	"loginTimeout": true, "socketTimeout": true, "tcpKeepAlive": true,
	"prepareThreshold": true, "preparedStatementCacheQueries": true,
	"preparedStatementCacheSizeMiB": true, "defaultRowFetchSize": true,
	"binaryTransfer": true, "reWriteBatchedInserts": true, "loggerLevel": true,
	"loggerFile": true, "autosave": true, "cancelSignalTimeout": true,
	"readOnly": true, "sslfactory": true, "sslpasswordcallback": true,
	"targetServerType": true, "loadBalanceHosts": true, "hostRecheckSeconds": true,
	"stringtype": true, "assumeMinServerVersion": true, "logUnclosedConnections": true,
	"gssEncMode": true, "sspiServiceClass": true, "kerberosServerName": true,
	"jaasApplicationName": true, "jaasLogin": true, "receiveBufferSize": true,
	"sendBufferSize": true, "disableColumnSanitiser": true, "escapeSyntaxCallMode": true,
}

// jdbcRenamed maps pgJDBC property names to their libpq names.
var jdbcRenamed = map[string]string{
	"ApplicationName": "application_name",
	"applicationName": "application_name",
	"connectTimeout":  "connect_timeout",
	"sslrootcert":     "sslrootcert",
	"sslcert":         "sslcert",
	"sslkey":          "sslkey",
	"sslpassword":     "sslpassword",
	"sslmode":         "sslmode",
	"options":         "options",
}

// ConnString turns the URL from <database-store>'s jdbc-connection-url into
// a connection string pgx accepts. The Artemis form
// jdbc:postgresql://host[:port][,host2[:port2]]/db?user=U&password=P&ssl=true
// (also jdbc:postgresql:db and jdbc:postgresql:/) and postgres:// or
// postgresql:// URLs are normalised the same way: user and password
// become the URL's user info, ssl=true becomes sslmode=require,
// currentSchema becomes a search_path option, ApplicationName and
// connectTimeout take their libpq names. pgJDBC properties with no libpq
// equivalent (camelCase names) are dropped and returned in dropped, sorted,
// so the caller can log them; pgx would otherwise send them to the server,
// which refuses unknown parameters. A libpq key=value string is returned
// unchanged.
func ConnString(s string) (conn string, dropped []string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil, fmt.Errorf("jdbcstore: empty connection URL")
	}
	scheme := "postgres:"
	var rest string
	switch {
	case hasPrefixFold(s, "jdbc:postgresql:"):
		rest = s[len("jdbc:postgresql:"):]
		if !strings.HasPrefix(rest, "//") {
			// jdbc:postgresql:database or jdbc:postgresql:/ : localhost.
			rest = "//localhost/" + strings.TrimPrefix(rest, "/")
		}
	case hasPrefixFold(s, "jdbc:"):
		return "", nil, fmt.Errorf("jdbcstore: connection URL %q: only jdbc:postgresql: URLs are supported", redact(s))
	case hasPrefixFold(s, "postgres://"):
		rest = s[len("postgres:"):]
	case hasPrefixFold(s, "postgresql://"):
		scheme, rest = "postgresql:", s[len("postgresql:"):]
	default:
		return s, nil, nil // libpq key=value
	}
	u, err := url.Parse(scheme + rest)
	if err != nil {
		return "", nil, fmt.Errorf("jdbcstore: connection URL %q: %w", redact(s), err)
	}
	if u.Host == "" && hasPrefixFold(s, "jdbc:") {
		u.Host = "localhost"
	}
	q := u.Query()
	out := url.Values{}
	user, password := "", ""
	hasPassword := false
	if u.User != nil {
		user = u.User.Username()
		password, hasPassword = u.User.Password()
	}
	var options []string
	for key, vals := range q {
		v := vals[len(vals)-1]
		switch {
		case key == "user":
			user = v
		case key == "password":
			password, hasPassword = v, true
		case key == "ssl":
			if strings.EqualFold(v, "true") && q.Get("sslmode") == "" {
				out.Set("sslmode", "require")
			}
		case key == "currentSchema":
			options = append(options, "-c search_path="+v)
		case key == "options":
			options = append(options, v)
		case jdbcRenamed[key] != "":
			out.Set(jdbcRenamed[key], v)
		case jdbcOnly[key]:
			dropped = append(dropped, key)
		case key == strings.ToLower(key):
			// Looks like a libpq or server parameter: keep it.
			out.Set(key, v)
		default:
			dropped = append(dropped, key)
		}
	}
	if len(options) > 0 {
		sort.Strings(options)
		out.Set("options", strings.Join(options, " "))
	}
	switch {
	case user != "" && hasPassword:
		u.User = url.UserPassword(user, password)
	case user != "":
		u.User = url.User(user)
	default:
		u.User = nil
	}
	// url.Values encodes a space as "+", which libpq and pgx decode as a
	// "+" (URI rules, not form rules): "-c+search_path=x" would reach the
	// server. Encode escapes a literal "+" as %2B, so each "+" is a space.
	u.RawQuery = strings.ReplaceAll(out.Encode(), "+", "%20")
	sort.Strings(dropped)
	return u.String(), dropped, nil
}

// redact hides a password in a URL for error messages.
func redact(s string) string {
	if i := indexFoldASCII(s, "password="); i >= 0 {
		j := strings.IndexByte(s[i:], '&')
		if j < 0 {
			return s[:i] + "password=xxx"
		}
		return s[:i] + "password=xxx" + s[i+j:]
	}
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return u.Redacted()
		}
	}
	return s
}

// indexFoldASCII is strings.Index with ASCII case folding, on bytes (so
// offsets stay valid for invalid UTF-8, unlike with strings.ToLower).
func indexFoldASCII(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		match := true
		for k := 0; k < len(sub); k++ {
			c := s[i+k]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sub[k] {
				match = false
				break
			}
		}
		if match {
			return i
		}
	}
	return -1
}

// hasPrefixFold reports whether s starts with the lower-case ASCII prefix p,
// ignoring ASCII case.
func hasPrefixFold(s, p string) bool {
	return len(s) >= len(p) && indexFoldASCII(s[:len(p)], p) == 0
}
