package config

import (
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// DefaultSecurityInvalidationInterval is Artemis's
// security-invalidation-interval default: how long a login's and a
// permission's result are cached (and how often the users file is
// checked for changes).
const DefaultSecurityInvalidationInterval = 10 * time.Second

// DefaultUsersFile is the users file's name beside broker.xml (etc/users).
const DefaultUsersFile = "users"

// Security is what <security>, <security-settings>,
// <security-invalidation-interval> and <management-http-ssl> say (the
// users of <security><users> stay in Config.Users). docs/security.md
// describes them for users.
type Security struct {
	// UsersFile is the users file (`tandem user` writes it), resolved:
	// <security><users-file> relative to broker.xml's directory, else
	// DefaultUsersFile there. "" when the configuration has no file.
	UsersFile string
	// UsersFileSet: <users-file> named it, so it must exist (the default
	// one may be missing: no users from it).
	UsersFileSet bool
	// RequireLogin (<security><require-login>): true refuses clients
	// without credentials, false lets them in with AnonymousRoles, nil
	// (not set) requires a login exactly when some user exists (the
	// older behaviour).
	RequireLogin *bool
	// AnonymousRoles (<security><anonymous-role>, comma-separated) are
	// the roles of a client that connects without credentials.
	AnonymousRoles []string
	// Settings are the <security-setting> elements. SettingsSet reports
	// that <security-settings> was present: without it every user who
	// logged in may do everything (Tandem's older behaviour; Artemis
	// refuses everything then).
	Settings    SecuritySettings
	SettingsSet bool
	// InvalidationInterval (<security-invalidation-interval>, ms, default
	// 10000; 0 caches nothing).
	InvalidationInterval time.Duration
	// ManagementSSL are the attributes of <management-http-ssl
	// keyStorePath="..." .../>: TLS on the management HTTP address, with
	// the acceptor URL's parameter names (nil: plain HTTP).
	ManagementSSL map[string]string
}

// SecuritySettings are the <security-setting> elements of
// <security-settings>, in file order.
type SecuritySettings []SecuritySetting

// SecuritySetting is one <security-setting match="...">: for each
// permission type, the roles that hold it on the matching addresses.
type SecuritySetting struct {
	// Match is the address pattern in Artemis's wildcard syntax.
	Match string
	// Roles maps a permission type (PermissionTypes) to its roles.
	Roles map[string][]string
	Line  int
}

// PermissionTypes are the <permission type="..."> values Tandem applies,
// Artemis's names (docs/security.md says what each guards).
var PermissionTypes = []string{
	"send", "consume", "createDurableQueue", "deleteDurableQueue", "createNonDurableQueue",
	"deleteNonDurableQueue", "createAddress", "deleteAddress", "browse", "manage",
}

// permissionTypesIgnored are permission types Artemis knows that Tandem
// does not use (management RBAC's view and edit): a warning.
var permissionTypesIgnored = setOf("view", "edit")

// For returns the setting that applies to address: the most specific
// match, as Artemis chooses it (security settings are not merged), or nil
// when none matches.
func (s SecuritySettings) For(address string) *SecuritySetting {
	var best *SecuritySetting
	for i := range s {
		if !MatchAddress(s[i].Match, address) {
			continue
		}
		if best == nil || compareMatch(s[i].Match, best.Match) < 0 {
			best = &s[i]
		}
	}
	return best
}

// DefaultSecurity is the security configuration without <security>.
func DefaultSecurity() Security {
	return Security{InvalidationInterval: DefaultSecurityInvalidationInterval}
}

// security parses Tandem's <security> block:
//
//	<security>
//	  <require-login>true</require-login>
//	  <anonymous-role>guest</anonymous-role>
//	  <users-file>users</users-file>
//	  <users>
//	    <user name="admin" password="secret" roles="admin,amq"/>
//	  </users>
//	</security>
func (p *parser) security(n *node) {
	s := &p.cfg.Security
	p.fields(n, map[string]func(*node){
		"require-login": func(e *node) {
			var b bool
			p.boolean(e, &b)
			s.RequireLogin = &b
		},
		"anonymous-role": func(e *node) {
			var v string
			p.str(e, &v)
			s.AnonymousRoles = splitList(v)
		},
		"users-file": func(e *node) {
			p.str(e, &s.UsersFile)
			if s.UsersFile == "" {
				p.errorf(e, "<users-file> is empty")
			}
			s.UsersFileSet = true
		},
		"users": func(e *node) {
			seen := map[string]int{}
			for _, u := range p.children(e) {
				if u.name != "user" {
					p.errorf(u, "unknown element <%s> in <users> (want <user name=\"...\" password=\"...\" roles=\"...\"/>)", u.name)
					continue
				}
				name := p.name(u)
				if l, dup := seen[name]; dup {
					p.errorf(u, "user %q defined twice (first at line %d)", name, l)
					continue
				}
				seen[name] = u.line
				pw, ok := u.attr("password")
				if !ok {
					p.errorf(u, "<user name=%q> needs a password attribute", name)
				}
				roles, _ := u.attr("roles")
				for _, a := range u.attrs {
					switch a.Name.Local {
					case "name", "password", "roles":
					default:
						p.errorf(u, "<user>: unknown attribute %q (want name, password, roles)", a.Name.Local)
					}
				}
				if len(u.children) > 0 {
					p.errorf(u.children[0], "<user> takes attributes, not elements")
				}
				p.cfg.Users = append(p.cfg.Users, User{Name: name, Password: pw, Roles: splitList(roles)})
			}
			if len(seen) > 0 {
				p.warnf(e, "<users> keeps passwords in clear text in broker.xml; `tandem user add` stores them hashed in the users file (docs/security.md)")
			}
		},
	}, nil, nil)
}

// securitySettings parses <security-settings>.
func (p *parser) securitySettings(n *node) {
	s := &p.cfg.Security
	s.SettingsSet = true
	seen := map[string]int{}
	for _, e := range p.children(n) {
		switch e.name {
		case "security-setting":
		case "security-setting-plugin":
			p.unsupported(e)
			continue
		default:
			p.errorf(e, "unknown element <%s> in <security-settings> (want <security-setting match=\"...\">)%s", e.name, suggest(e.name, []string{"security-setting"}))
			continue
		}
		match, ok := e.attr("match")
		if !ok {
			p.errorf(e, "<security-setting> needs a match attribute (an address pattern such as \"#\" or \"orders.*\")")
			continue
		}
		if err := CheckMatch(match); err != nil {
			p.errorf(e, "<security-setting match=%q>: %v", match, err)
			continue
		}
		if l, dup := seen[match]; dup {
			p.errorf(e, "<security-setting match=%q> appears twice (first at line %d)", match, l)
			continue
		}
		seen[match] = e.line
		st := SecuritySetting{Match: match, Roles: map[string][]string{}, Line: e.line}
		for _, c := range p.children(e) {
			switch c.name {
			case "permission":
			case "role-mapping":
				p.unsupported(c)
				continue
			default:
				p.errorf(c, "unknown element <%s> in <security-setting> (want <permission type=\"...\" roles=\"...\"/>)%s", c.name, suggest(c.name, []string{"permission"}))
				continue
			}
			typ, _ := c.attr("type")
			roles, hasRoles := c.attr("roles")
			for _, a := range c.attrs {
				if a.Name.Local != "type" && a.Name.Local != "roles" {
					p.errorf(c, "<permission>: unknown attribute %q (want type and roles)", a.Name.Local)
				}
			}
			switch {
			case permissionTypesIgnored[typ]:
				p.warnf(c, "<permission type=%q>: Tandem's management operations check the manage permission; %s is ignored", typ, typ)
				continue
			case !slices.Contains(PermissionTypes, typ):
				p.errorf(c, "<permission type=%q>: unknown permission type (want one of %s)%s", typ, strings.Join(PermissionTypes, ", "), suggest(typ, PermissionTypes))
				continue
			case !hasRoles:
				p.errorf(c, "<permission type=%q> needs a roles attribute (comma-separated role names)", typ)
				continue
			}
			if _, dup := st.Roles[typ]; dup {
				p.errorf(c, "<permission type=%q> appears twice in <security-setting match=%q>", typ, match)
				continue
			}
			st.Roles[typ] = splitList(roles)
		}
		s.Settings = append(s.Settings, st)
	}
	if len(s.Settings) == 0 {
		p.warnf(n, "<security-settings> has no <security-setting>: no user holds any permission (remove the element to let every user do everything)")
	}
}

// managementSSL parses <management-http-ssl keyStorePath="..." .../>.
func (p *parser) managementSSL(n *node) {
	if len(n.children) > 0 || strings.TrimSpace(string(n.text)) != "" {
		p.errorf(n, "<management-http-ssl> takes attributes (keyStorePath=\"...\" ...), not content")
		return
	}
	m := map[string]string{}
	for _, a := range n.attrs {
		if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" {
			continue
		}
		if !tlsParams[a.Name.Local] {
			p.errorf(n, "<management-http-ssl>: unknown attribute %q (want %s)", a.Name.Local, strings.Join(sortedKeys(tlsParams), ", "))
			continue
		}
		m[a.Name.Local] = a.Value
	}
	if m["keyStorePath"] == "" {
		p.errorf(n, "<management-http-ssl> needs keyStorePath (the server's key and certificate: a PEM file or a PKCS#12 keystore)")
	}
	p.cfg.Security.ManagementSSL = m
}

// tlsParams are the TLS parameters of acceptor and connector URLs (and
// <management-http-ssl>'s attributes), Artemis's names; package tlsconfig
// reads them.
var tlsParams = setOf("sslEnabled", "keyStorePath", "keyStoreType", "keyStorePassword",
	"trustStorePath", "trustStoreType", "trustStorePassword", "needClientAuth", "wantClientAuth",
	"verifyHost", "trustAll", "sniHost", "enabledProtocols")

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// resolveSecurity makes the users file and the TLS stores' paths
// absolute: a users file relative to broker.xml's directory (etc/), a
// store path relative to the instance directory (as the journal's).
func (c *Config) resolveSecurity() {
	s := &c.Security
	if c.File != "" && c.InstanceDir != "" {
		if s.UsersFile == "" {
			s.UsersFile = DefaultUsersFile
		}
		if !filepath.IsAbs(s.UsersFile) {
			base := filepath.Dir(c.File)
			if !filepath.IsAbs(base) {
				if abs, err := filepath.Abs(base); err == nil {
					base = abs
				}
			}
			s.UsersFile = filepath.Join(base, s.UsersFile)
		}
	}
	for _, m := range []map[string]string{s.ManagementSSL} {
		c.resolveStorePaths(m)
	}
	for i := range c.Acceptors {
		c.resolveStorePaths(c.Acceptors[i].Params)
	}
	for i := range c.Connectors {
		c.resolveStorePaths(c.Connectors[i].Params)
	}
}

// resolveStorePaths makes keyStorePath and trustStorePath absolute against
// the instance directory.
func (c *Config) resolveStorePaths(m map[string]string) {
	if c.InstanceDir == "" {
		return
	}
	for _, k := range []string{"keyStorePath", "trustStorePath"} {
		if v := m[k]; v != "" && !filepath.IsAbs(v) {
			m[k] = filepath.Join(c.InstanceDir, v)
		}
	}
}

// LoginRequired reports whether the configuration alone refuses clients
// without credentials: security enabled and <require-login> true, or not
// set while broker.xml lists users. The users file can add users: the
// broker's answer (auth.Guard) counts them too.
func (c *Config) LoginRequired() bool {
	if !c.SecurityEnabled {
		return false
	}
	if c.Security.RequireLogin != nil {
		return *c.Security.RequireLogin
	}
	return len(c.Users) > 0
}

// urlTLS checks the TLS parameters of an acceptor or connector URL (they
// are read again, with the key and trust stores, by package tlsconfig when
// the broker starts).
func (p *parser) urlTLS(n *node, kind string, a *Acceptor) {
	ps := a.Params
	boolParam := func(k string) bool {
		v, ok := ps[k]
		if !ok {
			return false
		}
		switch strings.ToLower(v) {
		case "true":
			return true
		case "false":
			return false
		}
		p.errorf(n, "%s %q: %s=%q is not a boolean (want true or false)", kind, a.Name, k, v)
		return false
	}
	on := boolParam("sslEnabled")
	need, want := boolParam("needClientAuth"), boolParam("wantClientAuth")
	boolParam("verifyHost")
	boolParam("trustAll")
	for _, k := range []string{"keyStoreType", "trustStoreType"} {
		v, ok := ps[k]
		if !ok {
			continue
		}
		switch strings.ToUpper(v) {
		case "PEM", "PKCS12":
		case "JKS", "JCEKS":
			p.errorf(n, "%s %q: %s=%s: Tandem reads PEM and PKCS12 stores; convert it with keytool -importkeystore -deststoretype PKCS12", kind, a.Name, k, v)
		default:
			p.errorf(n, "%s %q: %s=%q: want PEM or PKCS12", kind, a.Name, k, v)
		}
	}
	if !on {
		var set []string
		for k := range ps {
			if tlsParams[k] && k != "sslEnabled" {
				set = append(set, k)
			}
		}
		if len(set) > 0 {
			sort.Strings(set)
			p.warnf(n, "%s %q: %s without sslEnabled=true: TLS is off, ignored", kind, a.Name, strings.Join(set, ", "))
		}
		return
	}
	if kind == "acceptor" && ps["keyStorePath"] == "" {
		p.errorf(n, "acceptor %q: sslEnabled=true needs keyStorePath (the broker's key and certificate: a PEM file or a PKCS#12 keystore)", a.Name)
	}
	if kind == "acceptor" && (need || want) && ps["trustStorePath"] == "" {
		p.errorf(n, "acceptor %q: needClientAuth/wantClientAuth need trustStorePath (the certificate authorities client certificates must be signed by)", a.Name)
	}
}
