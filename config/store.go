package config

import (
	"net/url"
	"strings"
)

var databaseIgnored = setOf("jdbc-max-page-size-bytes", "data-source-class-name",
	"data-source-properties", "jdbc-journal-sync-period-millis", "jdbc-field-size-limit")

// store parses <store>: <file-store/> (the default) or <database-store>.
func (p *parser) store(n *node) {
	var first *node
	for _, c := range p.children(n) {
		switch c.name {
		case "file-store", "database-store":
			if first != nil {
				p.errorf(c, "<store> has two stores: <%s> (line %d) and <%s>", first.name, first.line, c.name)
				continue
			}
			first = c
		default:
			p.errorf(c, "unknown element <%s> in <store> (want <file-store> or <database-store>)%s", c.name, suggest(c.name, []string{"file-store", "database-store"}))
			continue
		}
		if c.name == "file-store" {
			p.fields(c, nil, nil, nil)
			continue
		}
		s := defaultDatabaseStore()
		p.fields(c, map[string]func(*node){
			"jdbc-connection-url":           func(e *node) { p.str(e, &s.URL) },
			"jdbc-driver-class-name":        func(e *node) { p.str(e, &s.DriverClassName) },
			"jdbc-user":                     func(e *node) { p.str(e, &s.User) },
			"jdbc-password":                 func(e *node) { p.str(e, &s.Password) },
			"message-table-name":            func(e *node) { p.table(e, &s.MessageTable) },
			"bindings-table-name":           func(e *node) { p.table(e, &s.BindingsTable) },
			"large-message-table-name":      func(e *node) { p.table(e, &s.LargeMessageTable) },
			"page-store-table-name":         func(e *node) { p.table(e, &s.PageStoreTable) },
			"node-manager-store-table-name": func(e *node) { p.table(e, &s.NodeManagerStoreTable) },
			"jdbc-lock-expiration":          func(e *node) { p.millis(e, &s.LockExpiration) },
			"jdbc-lock-renew-period":        func(e *node) { p.millis(e, &s.LockRenewPeriod) },
			"jdbc-network-timeout":          func(e *node) { p.millis(e, &s.NetworkTimeout) },
			"jdbc-lock-acquisition-timeout": func(e *node) { p.millis(e, &s.LockAcquisitionTimeout) },
			"jdbc-allowed-time-diff":        func(e *node) { p.millis(e, &s.AllowedTimeDiff) },
			"jdbc-journal-sync-period":      func(e *node) { p.millis(e, &s.JournalSyncPeriod) },
		}, nil, databaseIgnored)
		if s.URL == "" {
			p.errorf(c, "<database-store> needs <jdbc-connection-url> (jdbc:postgresql://host:5432/db?user=...&password=...)")
		} else if _, err := s.PgxURL(); err != nil {
			p.errorf(c, "<jdbc-connection-url>: %v", err)
		}
		if s.DriverClassName != "org.postgresql.Driver" {
			p.errorf(c, "<jdbc-driver-class-name> %q: Tandem supports PostgreSQL only (org.postgresql.Driver)", s.DriverClassName)
		}
		if s.LockRenewPeriod >= s.LockExpiration {
			p.errorf(c, "<jdbc-lock-renew-period> (%v) must be shorter than <jdbc-lock-expiration> (%v)", s.LockRenewPeriod, s.LockExpiration)
		}
		p.cfg.Store = s
	}
}

// table checks a table name is a plain SQL identifier.
func (p *parser) table(n *node, dst *string) {
	var v string
	p.str(n, &v)
	if v == "" || strings.IndexFunc(v, func(r rune) bool {
		return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) >= 0 || v[0] >= '0' && v[0] <= '9' {
		p.errorf(n, "<%s>: %q is not a table name (letters, digits and _)", n.name, v)
		return
	}
	*dst = v
}

// PgxURL turns jdbc-connection-url into a URL pgx accepts: the "jdbc:"
// prefix is dropped, and jdbc-user/jdbc-password are added when set.
// postgres:// and postgresql:// URLs are accepted as they are.
func (s *DatabaseStore) PgxURL() (string, error) {
	raw := strings.TrimPrefix(strings.TrimSpace(s.URL), "jdbc:")
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Scheme != "postgresql" && u.Scheme != "postgres" {
		return "", &urlSchemeError{s.URL}
	}
	q := u.Query()
	if s.User != "" {
		q.Set("user", s.User)
	}
	if s.Password != "" {
		q.Set("password", s.Password)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

type urlSchemeError struct{ url string }

func (e *urlSchemeError) Error() string {
	return "\"" + e.url + "\" is not a PostgreSQL URL (want jdbc:postgresql://host:5432/db?user=...&password=...)"
}
