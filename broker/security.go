package broker

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/tandemmq/tandem/auth"
	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/tlsconfig"
)

// The broker's security (docs/security.md): one auth.Guard for the whole
// run (every activation's acceptors and the management API share it, so
// the delay after failed logins and the caches survive a failover), TLS
// for acceptors, for the connections to peers (cluster probes and
// replication) and for the management address, and the banner's security
// lines.

// newSecurity returns the broker's guard: the users file, broker.xml's
// users, the security settings and the cluster user.
func newSecurity(cfg *config.Config, log *slog.Logger) (*auth.Guard, error) {
	return auth.New(auth.OptionsFrom(cfg, log))
}

// security returns the broker's guard (Run's), or a new one for a broker
// assembled without Run (tests).
func (nl *netLimits) security(cfg *config.Config, log *slog.Logger) (*auth.Guard, error) {
	if nl != nil && nl.sec != nil {
		return nl.sec, nil
	}
	return newSecurity(cfg, log)
}

// urlTLS returns the server (acceptor) or client (connector) TLS
// configuration of a URL's parameters, nil without sslEnabled=true.
func urlTLS(params map[string]string, server bool) (*tls.Config, error) {
	p, err := tlsconfig.FromParams(params)
	if err != nil || !p.Enabled {
		return nil, err
	}
	if server {
		return p.Server()
	}
	return p.Client()
}

// acceptorTLS is an acceptor's TLS (nil: plain TCP).
func acceptorTLS(ac config.Acceptor) (*tls.Config, error) {
	c, err := urlTLS(ac.Params, true)
	if err != nil {
		return nil, fmt.Errorf("acceptor %s: %w", ac.Name, err)
	}
	return c, nil
}

// peerTLS is the TLS with which this broker dials a peer at addr
// (host:port) for a cluster probe or replication: the TLS parameters of
// the connector with that address, else of the first static connector of
// the cluster connection that has sslEnabled (a peer learnt from the
// topology or ZooKeeper by another name). nil: plain TCP.
func peerTLS(cfg *config.Config, addr string) (*tls.Config, error) {
	var fallback *config.Acceptor
	for i, c := range cfg.Connectors {
		if c.Scheme != "tcp" {
			continue
		}
		if c.Address() == addr {
			tc, err := urlTLS(c.Params, false)
			if err != nil {
				return nil, fmt.Errorf("connector %s: %w", c.Name, err)
			}
			return tc, nil
		}
		if fallback == nil && strings.EqualFold(c.Params["sslEnabled"], "true") && isStatic(cfg, c.Name) {
			fallback = &cfg.Connectors[i]
		}
	}
	if fallback == nil {
		return nil, nil
	}
	tc, err := urlTLS(fallback.Params, false)
	if err != nil {
		return nil, fmt.Errorf("connector %s: %w", fallback.Name, err)
	}
	return tc, nil
}

func isStatic(cfg *config.Config, name string) bool {
	for _, cc := range cfg.ClusterConnections {
		for _, s := range cc.StaticConnectors {
			if s == name {
				return true
			}
		}
	}
	return false
}

// managementTLS is the management address's TLS (<management-http-ssl>).
func managementTLS(cfg *config.Config) (*tls.Config, error) {
	if cfg.Security.ManagementSSL == nil {
		return nil, nil
	}
	p, err := tlsconfig.FromParams(cfg.Security.ManagementSSL)
	if err != nil {
		return nil, fmt.Errorf("management-http-ssl: %w", err)
	}
	c, err := p.Server()
	if err != nil {
		return nil, fmt.Errorf("management-http-ssl: %w", err)
	}
	return c, nil
}

// managementScheme is "https" with <management-http-ssl>, else "http".
func managementScheme(cfg *config.Config) string {
	if cfg.Security.ManagementSSL != nil {
		return "https"
	}
	return "http"
}

// defaultClusterPasswords are the cluster passwords that come with a
// configuration nobody changed: Artemis's default and tandem create's.
var defaultClusterPasswords = map[string]bool{"CHANGE ME!!": true, "change-me": true}

// exposedAcceptors lists the tcp acceptors bound beyond loopback.
func exposedAcceptors(cfg *config.Config) []string {
	var out []string
	for _, a := range cfg.Acceptors {
		if a.Scheme != "tcp" {
			continue
		}
		if ip := net.ParseIP(a.Host); ip != nil && ip.IsLoopback() || a.Host == "localhost" {
			continue
		}
		out = append(out, a.Name+" ("+a.Address()+")")
	}
	return out
}

// securityBanner returns the banner's security lines, and logs the
// warnings among them: a broker beyond loopback that lets anonymous
// clients in (or has security off), the default cluster password on an
// HA broker.
func securityBanner(cfg *config.Config, g *auth.Guard, log *slog.Logger) string {
	var b strings.Builder
	exposed := exposedAcceptors(cfg)
	warn := func(msg string, args ...any) {
		fmt.Fprintf(&b, "  WARNING:     %s\n", msg)
		log.Warn(msg, args...)
	}
	switch {
	case g == nil:
		fmt.Fprintf(&b, "  security:    unknown\n")
	case g.Disabled():
		fmt.Fprintf(&b, "  security:    off (security-enabled false): every client may do everything\n")
		if len(exposed) > 0 {
			warn("security is off and acceptors listen beyond this machine: anyone who reaches them may do everything", "acceptors", strings.Join(exposed, ", "))
		}
	case g.AnonymousAllowed():
		fmt.Fprintf(&b, "  security:    anonymous access allowed (%d users configured)\n", g.Users())
		if len(exposed) > 0 {
			warn("anonymous clients are let in on acceptors beyond this machine: add a user (tandem user add) and set <require-login>true</require-login> in <security>",
				"acceptors", strings.Join(exposed, ", "))
		}
	default:
		fmt.Fprintf(&b, "  security:    login required, %d users configured\n", g.Users())
		if g.Users() == 0 {
			warn("login is required but no user exists: no client can connect; add one with tandem user add")
		}
	}
	if g != nil && !g.Disabled() {
		if g.SettingsSet() {
			fmt.Fprintf(&b, "  permissions: %d security-settings\n", len(cfg.Security.Settings))
		} else {
			fmt.Fprintf(&b, "  permissions: no security-settings: every client that logs in may do everything\n")
		}
	}
	var tlsOn []string
	for _, a := range cfg.Acceptors {
		if strings.EqualFold(a.Params["sslEnabled"], "true") {
			tlsOn = append(tlsOn, a.Name)
		}
	}
	if len(tlsOn) > 0 {
		fmt.Fprintf(&b, "  tls:         acceptors %s\n", strings.Join(tlsOn, ", "))
	}
	if cfg.HA.Policy != "" && cfg.HA.Policy != config.PolicyNone && defaultClusterPasswords[cfg.ClusterPassword] {
		warn("the cluster password is the default one: any broker (or client) that knows it can join or replicate; set <cluster-password> on every broker of the cluster")
	}
	return b.String()
}

// checkTLS loads the stores of every acceptor and connector with
// sslEnabled, so that a wrong path or password stops tandem run at once
// (exit 1) rather than at the first activation or replication.
func checkTLS(cfg *config.Config) error {
	for _, a := range cfg.Acceptors {
		if _, err := acceptorTLS(a); err != nil {
			return err
		}
	}
	for _, c := range cfg.Connectors {
		if _, err := urlTLS(c.Params, false); err != nil {
			return fmt.Errorf("connector %s: %w", c.Name, err)
		}
	}
	return nil
}
