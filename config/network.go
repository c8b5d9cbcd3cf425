package config

import (
	"fmt"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"
)

// fields walks n's children: each name in known is parsed by its function
// (once, unless it is in repeat); names in ignored are warned about; any
// other name is an error.
func (p *parser) fields(n *node, known map[string]func(*node), repeat, ignored map[string]bool) {
	seen := map[string]int{}
	for _, c := range p.children(n) {
		if f, ok := known[c.name]; ok {
			if repeat[c.name] || p.once(seen, c, n.name) {
				f(c)
			}
			continue
		}
		if ignored[c.name] {
			p.unsupported(c)
			continue
		}
		names := make([]string, 0, len(known))
		for k := range known {
			names = append(names, k)
		}
		sort.Strings(names)
		p.errorf(c, "unknown element <%s> in <%s>%s", c.name, n.name, suggest(c.name, names))
	}
}

// name returns the required name attribute of n.
func (p *parser) name(n *node) string {
	v, _ := n.attr("name")
	v = strings.TrimSpace(v)
	if v == "" {
		p.errorf(n, "<%s> needs a name attribute", n.name)
	}
	return v
}

// parseURL parses an Artemis transport URL: tcp://host:port?k=v;k=v (also
// '&'), or vm://ID.
func parseURL(s string) (Acceptor, error) {
	a := Acceptor{URL: s, Params: map[string]string{}}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" {
		return a, fmt.Errorf("%q is not a URL (want tcp://host:port)", s)
	}
	a.Scheme = strings.ToLower(scheme)
	hostport, query, _ := strings.Cut(rest, "?")
	hostport = strings.TrimSuffix(hostport, "/")
	for _, kv := range strings.FieldsFunc(query, func(r rune) bool { return r == ';' || r == '&' }) {
		k, v, _ := strings.Cut(kv, "=")
		a.Params[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	switch a.Scheme {
	case "tcp":
		host, port, err := net.SplitHostPort(hostport)
		if err != nil {
			host, port = strings.Trim(hostport, "[]"), "61616"
		}
		if host == "" {
			return a, fmt.Errorf("%q has no host", s)
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 0 || n > 65535 {
			return a, fmt.Errorf("%q: port %q is not a number from 0 to 65535", s, port)
		}
		a.Host, a.Port = host, n
	case "vm":
		a.Host = hostport
	default:
		return a, fmt.Errorf("%q: scheme %q is not supported (want tcp)", s, scheme)
	}
	return a, nil
}

// urls parses <acceptors> or <connectors>: a list of <kind name="...">URL</kind>.
func (p *parser) urls(n *node, kind string) []Acceptor {
	var out []Acceptor
	names := map[string]int{}
	for _, c := range p.children(n) {
		if c.name != kind {
			p.errorf(c, "unknown element <%s> in <%s> (want <%s name=\"...\">URL</%s>)%s", c.name, n.name, kind, kind, suggest(c.name, []string{kind}))
			continue
		}
		name := p.name(c)
		if l, dup := names[name]; dup && name != "" {
			p.errorf(c, "%s %q defined twice (first at line %d)", kind, name, l)
			continue
		}
		names[name] = c.line
		v, ok := p.leaf(c)
		if !ok {
			continue
		}
		a, err := parseURL(v)
		if err != nil {
			p.errorf(c, "<%s name=%q>: %v", kind, name, err)
			continue
		}
		a.Name, a.Line = name, c.line
		if a.Scheme == "vm" {
			p.warnf(c, "%s %q: in-VM transport (vm://) not supported yet, ignored", kind, name)
			if kind == "acceptor" {
				continue // nothing listens on it; a vm connector stays for references
			}
		}
		if kind == "acceptor" {
			p.acceptorLimits(c, &a)
		}
		p.urlTLS(c, kind, &a)
		var keys []string
		for k := range a.Params {
			if (kind != "acceptor" || !acceptorParams[k]) && !tlsParams[k] {
				keys = append(keys, k)
			}
		}
		if len(keys) > 0 {
			sort.Strings(keys)
			p.warnf(c, "%s %q: URL parameters %s not supported yet, ignored", kind, name, strings.Join(keys, ", "))
		}
		if kind == "connector" {
			p.connectors[name] = true
		}
		out = append(out, a)
	}
	return out
}

// acceptorParams are the acceptor URL parameters the broker uses: which
// protocols it serves, Artemis's routing prefixes and STOMP's connection
// TTL (docs/protocols.md), and the connection limits (docs/limits.md).
var acceptorParams = setOf("protocols", "anycastPrefix", "multicastPrefix", "connectionTtl",
	"connectionsAllowed", "writeBufferHighWaterMark", "writeBufferLowWaterMark", "writeTimeout")

// acceptorLimits parses the acceptor URL parameters Tandem implements into
// a.Limits.
func (p *parser) acceptorLimits(n *node, a *Acceptor) {
	num := func(key string, min int64) (int64, bool) {
		v, ok := a.Params[key]
		if !ok {
			return 0, false
		}
		i, err := strconv.ParseInt(v, 10, 64)
		if err != nil || i < min || i > math.MaxInt32 {
			p.errorf(n, "acceptor %q: %s=%q is not a number from %d to %d", a.Name, key, v, min, math.MaxInt32)
			return 0, false
		}
		return i, true
	}
	l := &a.Limits
	if v, ok := num("connectionsAllowed", -1); ok {
		l.ConnectionsAllowed = int(v)
	}
	if v, ok := num("writeBufferHighWaterMark", 1); ok {
		l.HighWaterMark = int(v)
	}
	if v, ok := num("writeBufferLowWaterMark", 0); ok {
		l.LowWaterMark = int(v)
	}
	if v, ok := num("writeTimeout", -1); ok {
		if v == 0 {
			p.errorf(n, "acceptor %q: writeTimeout=0 would close every connection (want -1 for never, or milliseconds)", a.Name)
		}
		l.WriteTimeout = time.Duration(v) * time.Millisecond
		if v < 0 {
			l.WriteTimeout = -1
		}
	}
	if l.HighWaterMark > 0 && l.LowWaterMark > l.HighWaterMark {
		p.errorf(n, "acceptor %q: writeBufferLowWaterMark=%d is above writeBufferHighWaterMark=%d", a.Name, l.LowWaterMark, l.HighWaterMark)
	}
}

var clusterIgnored = setOf("min-large-message-size", "confirmation-window-size",
	"producer-window-size", "call-failover-timeout", "notification-interval",
	"notification-attempts", "scale-down-connector", "topology-scanner-attempts",
	"forward-when-no-consumers", "cluster-notification-interval", "cluster-notification-attempts")

func (p *parser) clusterConnections(n *node) {
	names := map[string]int{}
	for _, c := range p.children(n) {
		switch c.name {
		case "cluster-connection":
		case "cluster-connection-uri":
			p.unsupported(c)
			continue
		default:
			p.errorf(c, "unknown element <%s> in <cluster-connections> (want <cluster-connection name=\"...\">)%s", c.name, suggest(c.name, []string{"cluster-connection"}))
			continue
		}
		cc := defaultClusterConnection()
		cc.Name, cc.Line = p.name(c), c.line
		if l, dup := names[cc.Name]; dup && cc.Name != "" {
			p.errorf(c, "cluster-connection %q defined twice (first at line %d)", cc.Name, l)
		}
		names[cc.Name] = c.line
		var static, disc *node
		p.fields(c, map[string]func(*node){
			"address":       func(e *node) { p.str(e, &cc.Address) },
			"connector-ref": func(e *node) { p.str(e, &cc.ConnectorRef) },
			"static-connectors": func(e *node) {
				static = e
				cc.StaticConnectors = p.refs(e, "connector-ref")
			},
			"discovery-group-ref": func(e *node) {
				disc = e
				cc.DiscoveryGroupRef = p.discoveryRef(e)
			},
			"message-load-balancing": func(e *node) {
				p.str(e, &cc.MessageLoadBalancing)
				switch cc.MessageLoadBalancing {
				case "OFF", "STRICT", "ON_DEMAND", "OFF_WITH_REDISTRIBUTION":
				default:
					p.errorf(e, "<message-load-balancing>: %q (want OFF, STRICT, ON_DEMAND or OFF_WITH_REDISTRIBUTION)", cc.MessageLoadBalancing)
				}
			},
			"max-hops":                  func(e *node) { p.integer(e, &cc.MaxHops) },
			"retry-interval":            func(e *node) { p.millis(e, &cc.RetryInterval) },
			"retry-interval-multiplier": func(e *node) { p.float(e, &cc.RetryMultiplier) },
			"max-retry-interval":        func(e *node) { p.millis(e, &cc.MaxRetryInterval) },
			"reconnect-attempts":        func(e *node) { p.integer(e, &cc.ReconnectAttempts) },
			"initial-connect-attempts":  func(e *node) { p.integer(e, &cc.InitialConnect) },
			"call-timeout":              func(e *node) { p.millis(e, &cc.CallTimeout) },
			"check-period":              func(e *node) { p.millis(e, &cc.CheckPeriod) },
			"connection-ttl":            func(e *node) { p.millis(e, &cc.ConnectionTTL) },
			"use-duplicate-detection":   func(e *node) { p.boolean(e, &cc.DuplicateDetection) },
		}, nil, clusterIgnored)
		if static != nil && disc != nil {
			p.errorf(disc, "<cluster-connection name=%q> has both <static-connectors> (line %d) and <discovery-group-ref>; choose one", cc.Name, static.line)
		}
		if cc.ConnectorRef == "" {
			p.errorf(c, "<cluster-connection name=%q> needs a <connector-ref> (the connector this node announces)", cc.Name)
		}
		p.cfg.ClusterConnections = append(p.cfg.ClusterConnections, cc)
	}
}

// refs parses a list of <kind>NAME</kind> elements.
func (p *parser) refs(n *node, kind string) []string {
	var out []string
	for _, c := range p.children(n) {
		if c.name != kind {
			p.errorf(c, "unknown element <%s> in <%s> (want <%s>)%s", c.name, n.name, kind, suggest(c.name, []string{kind}))
			continue
		}
		var v string
		p.str(c, &v)
		if v == "" {
			p.errorf(c, "<%s> is empty", kind)
			continue
		}
		out = append(out, v)
	}
	if len(out) == 0 && len(n.children) == 0 {
		p.errorf(n, "<%s> lists no <%s>", n.name, kind)
	}
	return out
}

// discoveryRef reads <discovery-group-ref discovery-group-name="..."/>.
func (p *parser) discoveryRef(n *node) string {
	v, _ := n.attr("discovery-group-name")
	v = strings.TrimSpace(v)
	if v == "" {
		p.errorf(n, "<discovery-group-ref> needs a discovery-group-name attribute")
	}
	if len(n.children) > 0 {
		p.errorf(n.children[0], "<discovery-group-ref> takes no elements")
	}
	return v
}

var groupIgnored = setOf("local-bind-address", "local-bind-port", "jgroups-file", "jgroups-channel", "initial-wait-timeout")

func (p *parser) broadcastGroups(n *node) {
	for _, c := range p.children(n) {
		if c.name != "broadcast-group" {
			p.errorf(c, "unknown element <%s> in <broadcast-groups> (want <broadcast-group name=\"...\">)", c.name)
			continue
		}
		g := BroadcastGroup{Name: p.name(c), BroadcastPer: 2000 * time.Millisecond, Line: c.line}
		p.fields(c, map[string]func(*node){
			"group-address":    func(e *node) { p.str(e, &g.GroupAddress) },
			"group-port":       func(e *node) { p.integer(e, &g.GroupPort) },
			"broadcast-period": func(e *node) { p.millis(e, &g.BroadcastPer) },
			"connector-ref": func(e *node) {
				var v string
				p.str(e, &v)
				g.ConnectorRefs = append(g.ConnectorRefs, v)
			},
		}, setOf("connector-ref"), setOf("local-bind-address", "local-bind-port", "jgroups-file", "jgroups-channel"))
		p.cfg.BroadcastGroups = append(p.cfg.BroadcastGroups, g)
	}
}

func (p *parser) discoveryGroups(n *node) {
	for _, c := range p.children(n) {
		if c.name != "discovery-group" {
			p.errorf(c, "unknown element <%s> in <discovery-groups> (want <discovery-group name=\"...\">)", c.name)
			continue
		}
		g := DiscoveryGroup{Name: p.name(c), RefreshTimeout: 10 * time.Second, Line: c.line}
		p.fields(c, map[string]func(*node){
			"group-address":   func(e *node) { p.str(e, &g.GroupAddress) },
			"group-port":      func(e *node) { p.integer(e, &g.GroupPort) },
			"refresh-timeout": func(e *node) { p.millis(e, &g.RefreshTimeout) },
		}, nil, groupIgnored)
		p.discovery[g.Name] = true
		p.cfg.DiscoveryGroups = append(p.cfg.DiscoveryGroups, g)
	}
}

// checkRefs checks that names used in one section are defined in another.
// A cluster connection must name real connectors (errors); a scale-down
// target is resolved when the broker stops, so a missing one is a warning.
func (p *parser) checkRefs() {
	c := p.cfg
	for _, cc := range c.ClusterConnections {
		at := &node{line: cc.Line}
		if cc.ConnectorRef != "" && !p.connectors[cc.ConnectorRef] {
			p.errorf(at, "cluster-connection %q: connector-ref %q is not defined in <connectors>", cc.Name, cc.ConnectorRef)
		}
		for _, s := range cc.StaticConnectors {
			if !p.connectors[s] {
				p.errorf(at, "cluster-connection %q: static connector %q is not defined in <connectors>", cc.Name, s)
			}
		}
		if cc.DiscoveryGroupRef != "" && !p.discovery[cc.DiscoveryGroupRef] {
			p.errorf(at, "cluster-connection %q: discovery group %q is not defined in <discovery-groups>", cc.Name, cc.DiscoveryGroupRef)
		}
	}
	for _, g := range c.BroadcastGroups {
		for _, r := range g.ConnectorRefs {
			if !p.connectors[r] {
				p.errorf(&node{line: g.Line}, "broadcast-group %q: connector-ref %q is not defined in <connectors>", g.Name, r)
			}
		}
	}
	// Discovery groups serve a live-only broker's scale-down (its own, or
	// the first cluster connection's); broadcast groups are sent by single
	// brokers (no HA policy, or live-only).
	used := map[string]bool{}
	if c.HA.Policy == PolicyLiveOnly {
		if sd := c.HA.ScaleDown; sd != nil && sd.DiscoveryGroup != "" {
			used[sd.DiscoveryGroup] = true
		} else if len(c.ClusterConnections) > 0 {
			used[c.ClusterConnections[0].DiscoveryGroupRef] = true
		}
	}
	for _, g := range c.DiscoveryGroups {
		if !used[g.Name] {
			p.warnf(&node{line: g.Line}, "<discovery-group> %q: Tandem uses discovery groups only to find a live-only broker's scale-down target; ignored here", g.Name)
		}
	}
	if c.HA.Policy != PolicyNone && c.HA.Policy != PolicyLiveOnly {
		for _, g := range c.BroadcastGroups {
			p.warnf(&node{line: g.Line}, "<broadcast-group> %q: only single brokers (no HA policy, or live-only) broadcast in Tandem; ignored here", g.Name)
		}
	}
	if p.haNode == nil {
		return
	}
	check := func(sd *ScaleDown) {
		if sd == nil {
			return
		}
		at := &node{line: sd.line}
		for _, r := range sd.Connectors {
			if !p.connectors[r] {
				p.warnf(at, "scale-down connector %q is not defined in <connectors>", r)
			}
		}
		if sd.DiscoveryGroup != "" && !p.discovery[sd.DiscoveryGroup] {
			p.warnf(at, "scale-down discovery group %q is not defined in <discovery-groups>", sd.DiscoveryGroup)
		}
	}
	check(c.HA.ScaleDown)
	if col := c.HA.Colocated; col != nil {
		check(col.Backup.ScaleDown)
		for _, r := range col.Excludes {
			if !p.connectors[r] {
				p.warnf(&node{line: col.excludesLine}, "colocated excludes connector %q, which is not defined in <connectors>", r)
			}
		}
	}
}
