package config

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// haKind is a place where HA options are written; each allows a set of them.
type haKind int

const (
	ssPrimary haKind = iota
	ssBackup
	replPrimaryQuorum
	replBackupQuorum
	replPrimaryZK
	replBackupZK
	liveOnly
)

var haKindNames = map[haKind]string{
	ssPrimary:         "<shared-store><primary>",
	ssBackup:          "<shared-store><backup>",
	replPrimaryQuorum: "<replication><primary>/<master> without <manager> (quorum vote)",
	replBackupQuorum:  "<replication><backup>/<slave> without <manager> (quorum vote)",
	replPrimaryZK:     "<replication><primary> with <manager> (ZooKeeper)",
	replBackupZK:      "<replication><backup> with <manager> (ZooKeeper)",
	liveOnly:          "<live-only>",
}

// haKindShort says which coordination an option set belongs to.
var haKindShort = map[haKind]string{
	replPrimaryQuorum: " (quorum vote)",
	replBackupQuorum:  " (quorum vote)",
	replPrimaryZK:     " (ZooKeeper, with <manager>)",
	replBackupZK:      " (ZooKeeper, with <manager>)",
}

// haAllowed follows Artemis's schema (artemis-configuration.xsd): which
// options each policy and role accepts.
var haAllowed = map[haKind]map[string]bool{
	ssPrimary: setOf("failover-on-shutdown", "wait-for-activation", "failback-delay"),
	ssBackup:  setOf("allow-failback", "failover-on-shutdown", "restart-backup", "scale-down", "failback-delay"),
	replPrimaryQuorum: setOf("group-name", "cluster-name", "check-for-live-server", "check-for-active-server",
		"initial-replication-sync-timeout", "vote-on-replication-failure", "quorum-size", "vote-retries",
		"vote-retry-wait", "quorum-vote-wait", "retry-replication-wait"),
	replBackupQuorum: setOf("group-name", "cluster-name", "max-saved-replicated-journals-size", "scale-down",
		"restart-backup", "allow-failback", "failback-delay", "initial-replication-sync-timeout",
		"vote-on-replication-failure", "quorum-size", "vote-retries", "vote-retry-wait", "quorum-vote-wait",
		"retry-replication-wait"),
	replPrimaryZK: setOf("manager", "group-name", "cluster-name", "initial-replication-sync-timeout",
		"retry-replication-wait", "coordination-id", "replication-ack", "max-saved-replicated-journals-size"),
	replBackupZK: setOf("manager", "group-name", "cluster-name", "max-saved-replicated-journals-size",
		"allow-failback", "restart-backup", "initial-replication-sync-timeout", "retry-replication-wait",
		"replication-ack"),
	liveOnly: setOf("scale-down"),
}

// haSetters parse each HA option into an HA.
var haSetters = map[string]func(p *parser, e *node, h *HA){
	"failover-on-shutdown": func(p *parser, e *node, h *HA) { p.boolean(e, &h.FailoverOnShutdown) },
	"wait-for-activation":  func(p *parser, e *node, h *HA) { p.boolean(e, &h.WaitForActivation) },
	"allow-failback":       func(p *parser, e *node, h *HA) { p.boolean(e, &h.AllowFailback) },
	"restart-backup":       func(p *parser, e *node, h *HA) { p.boolean(e, &h.RestartBackup) },
	"scale-down":           func(p *parser, e *node, h *HA) { h.ScaleDown = p.scaleDown(e) },
	"failback-delay": func(p *parser, e *node, h *HA) {
		var d time.Duration
		p.millis(e, &d)
		p.warnf(e, "<failback-delay> is deprecated in Artemis and has no effect, ignored")
	},
	"group-name":              func(p *parser, e *node, h *HA) { p.str(e, &h.GroupName) },
	"cluster-name":            func(p *parser, e *node, h *HA) { p.str(e, &h.ClusterName) },
	"check-for-live-server":   func(p *parser, e *node, h *HA) { p.boolean(e, &h.CheckForActiveServer) },
	"check-for-active-server": func(p *parser, e *node, h *HA) { p.boolean(e, &h.CheckForActiveServer) },
	"initial-replication-sync-timeout": func(p *parser, e *node, h *HA) {
		p.millis(e, &h.InitialReplicationSyncTimeout)
	},
	"vote-on-replication-failure": func(p *parser, e *node, h *HA) { p.boolean(e, &h.VoteOnReplicationFailure) },
	"quorum-size":                 func(p *parser, e *node, h *HA) { p.integer(e, &h.QuorumSize) },
	"vote-retries":                func(p *parser, e *node, h *HA) { p.integer(e, &h.VoteRetries) },
	"vote-retry-wait":             func(p *parser, e *node, h *HA) { p.millis(e, &h.VoteRetryWait) },
	// quorum-vote-wait is in seconds, as in Artemis.
	"quorum-vote-wait":       func(p *parser, e *node, h *HA) { p.seconds(e, &h.QuorumVoteWait) },
	"retry-replication-wait": func(p *parser, e *node, h *HA) { p.millis(e, &h.RetryReplicationWait) },
	// replication-ack is Tandem's: durable (default) or received (Artemis's level).
	"replication-ack": func(p *parser, e *node, h *HA) {
		var v string
		p.str(e, &v)
		switch v {
		case "durable", "received":
			h.ReplicationAck = v
		default:
			p.errorf(e, "replication-ack %q: want durable or received", v)
		}
	},
	"max-saved-replicated-journals-size": func(p *parser, e *node, h *HA) {
		p.integer(e, &h.MaxSavedReplicatedJournalsSize)
	},
	"coordination-id": func(p *parser, e *node, h *HA) {
		p.str(e, &h.CoordinationID)
		if h.CoordinationID == "" {
			p.errorf(e, "<coordination-id> is empty")
		}
	},
	"manager": func(p *parser, e *node, h *HA) { h.Manager = p.manager(e) },
}

// colocatedOptions are the options of <colocated> itself.
var colocatedOptions = []string{"request-backup", "max-backups", "backup-request-retries",
	"backup-request-retry-interval", "backup-port-offset", "excludes"}

var policyNames = []string{"shared-store", "replication", "live-only", "primary-only"}

func (p *parser) haPolicy(n *node) {
	h := &p.cfg.HA
	h.Line = n.line
	var first *node
	for _, c := range p.children(n) {
		known := false
		for _, pn := range policyNames {
			known = known || c.name == pn
		}
		if !known {
			p.errorf(c, "unknown HA policy <%s> in <ha-policy> (want <shared-store>, <replication> or <live-only>)%s", c.name, suggest(c.name, policyNames))
			continue
		}
		if first != nil {
			p.errorf(c, "<ha-policy> has two policies: <%s> (line %d) and <%s>; choose one", first.name, first.line, c.name)
			continue
		}
		first = c
		switch c.name {
		case "shared-store":
			p.storePolicy(c, PolicySharedStore)
		case "replication":
			p.storePolicy(c, PolicyReplication)
		case "live-only", "primary-only":
			h.Policy, h.Role, h.Element = PolicyLiveOnly, RolePrimary, c.name
			p.haOptions(c, liveOnly, h, "<"+c.name+">")
		}
	}
}

// roleOf maps Artemis's role element names to a role.
func roleOf(name string) (Role, bool) {
	switch name {
	case "master", "primary":
		return RolePrimary, true
	case "slave", "backup":
		return RoleBackup, true
	}
	return "", false
}

// storePolicy parses <shared-store> or <replication>: one of
// <master>/<primary>, <slave>/<backup> or <colocated>.
func (p *parser) storePolicy(n *node, policy Policy) {
	h := &p.cfg.HA
	var first *node
	for _, c := range p.children(n) {
		_, isRole := roleOf(c.name)
		if !isRole && c.name != "colocated" {
			msg := fmt.Sprintf("unknown element <%s> in <%s> (want <primary>, <backup> or <colocated>; or the old names <master>, <slave>)", c.name, n.name)
			if haSetters[c.name] != nil {
				msg = fmt.Sprintf("<%s> belongs inside <%s><primary> or <%s><backup>, not directly in <%s>", c.name, n.name, n.name, n.name)
			}
			p.errorf(c, "%s%s", msg, suggest(c.name, []string{"primary", "backup", "master", "slave", "colocated"}))
			continue
		}
		if first != nil {
			p.errorf(c, "<%s> has two roles: <%s> (line %d) and <%s>; a broker has one", n.name, first.name, first.line, c.name)
			continue
		}
		first = c
		if c.name == "colocated" {
			h.Policy, h.Role, h.Element = PolicyColocated, RolePrimary, n.name+"/colocated"
			p.colocated(c, policy)
			continue
		}
		h.Policy, h.Element = policy, n.name+"/"+c.name
		h.Role, _ = roleOf(c.name)
		if kind, ok := p.roleKind(c, policy); ok {
			p.haOptions(c, kind, h, "<"+n.name+"><"+c.name+">")
		}
	}
	if first == nil {
		p.errorf(n, "<%s> needs one of <primary>, <backup> or <colocated> (or <master>, <slave>)", n.name)
	}
}

// roleKind decides which option set a role element takes. Under
// replication, <primary>/<backup> with a <manager> mean ZooKeeper
// coordination; without one, and for <master>/<slave>, the quorum vote.
func (p *parser) roleKind(c *node, policy Policy) (haKind, bool) {
	role, _ := roleOf(c.name)
	if policy == PolicySharedStore {
		if role == RolePrimary {
			return ssPrimary, true
		}
		return ssBackup, true
	}
	var mgr *node
	for _, e := range c.children {
		if e.name == "manager" && artemisSpaces[e.space] {
			mgr = e
			break
		}
	}
	if mgr != nil && (c.name == "master" || c.name == "slave") {
		p.errorf(mgr, "<manager> is not allowed in <%s>: ZooKeeper coordination uses <primary>/<backup>; <master>/<slave> use the quorum vote", c.name)
		return 0, false
	}
	switch {
	case role == RolePrimary && mgr != nil:
		return replPrimaryZK, true
	case role == RolePrimary:
		return replPrimaryQuorum, true
	case mgr != nil:
		return replBackupZK, true
	}
	return replBackupQuorum, true
}

// haOptions parses the options of one role element into h.
// where names the place as written, e.g. "<replication><slave>".
func (p *parser) haOptions(n *node, kind haKind, h *HA, where string) {
	allowed := haAllowed[kind]
	seen := map[string]int{}
	for _, e := range p.children(n) {
		if !allowed[e.name] {
			p.errorf(e, "%s", notAllowed(e.name, n.name, where+haKindShort[kind], allowed))
			continue
		}
		if !p.once(seen, e, n.name) {
			continue
		}
		haSetters[e.name](p, e, h)
	}
	if l1, ok := seen["check-for-live-server"]; ok {
		if l2, ok := seen["check-for-active-server"]; ok {
			p.errorf(&node{line: l2}, "<check-for-active-server> and <check-for-live-server> (line %d) are the same option; keep one", l1)
		}
	}
}

// notAllowed explains why an element is not an option at this place.
func notAllowed(name, parent, where string, allowed map[string]bool) string {
	if haSetters[name] != nil {
		var belongs []string
		for k, set := range haAllowed {
			if set[name] {
				belongs = append(belongs, haKindNames[k])
			}
		}
		sort.Strings(belongs)
		return fmt.Sprintf("<%s> is not an option of %s; it belongs to %s", name, where, strings.Join(belongs, ", "))
	}
	for _, o := range colocatedOptions {
		if o == name {
			return fmt.Sprintf("<%s> is an option of <colocated>, not of %s", name, where)
		}
	}
	if _, isRole := roleOf(name); isRole || name == "colocated" {
		return fmt.Sprintf("<%s> cannot be nested in <%s>", name, parent)
	}
	if isCoreSetting(name) && name != "name" {
		return fmt.Sprintf("<%s> is a <core> setting; it belongs outside <ha-policy>", name)
	}
	names := make([]string, 0, len(allowed))
	for k := range allowed {
		names = append(names, k)
	}
	return fmt.Sprintf("unknown element <%s> in %s%s", name, where, suggest(name, names))
}

func (p *parser) scaleDown(n *node) *ScaleDown {
	sd := defaultScaleDown()
	sd.line = n.line
	var conns, disc *node
	p.fields(n, map[string]func(*node){
		"enabled":    func(e *node) { p.boolean(e, &sd.Enabled) },
		"group-name": func(e *node) { p.str(e, &sd.GroupName) },
		"discovery-group-ref": func(e *node) {
			disc = e
			sd.DiscoveryGroup = p.discoveryRef(e)
		},
		"connectors": func(e *node) {
			conns = e
			sd.Connectors = p.refs(e, "connector-ref")
		},
		"commit-interval": func(e *node) { p.integer(e, &sd.CommitInterval) },
	}, nil, nil)
	if conns != nil && disc != nil {
		p.errorf(disc, "<scale-down> has both <connectors> (line %d) and <discovery-group-ref>; choose one", conns.line)
	}
	return sd
}

// zkProperties are the <manager> properties Tandem's ZooKeeper client
// understands (Artemis's Curator manager names).
var zkProperties = []string{"connect-string", "namespace", "session-ms", "session-percent",
	"connection-ms", "retries", "retries-ms"}

func (p *parser) manager(n *node) *Manager {
	m := defaultManager()
	p.fields(n, map[string]func(*node){
		"class-name": func(e *node) {
			p.str(e, &m.ClassName)
			switch m.ClassName {
			case CuratorManager, CuratorLockManager:
			default:
				p.errorf(e, "<class-name> %q: Tandem implements the ZooKeeper manager only (%s)", m.ClassName, CuratorLockManager)
			}
		},
		"properties": func(e *node) {
			seen := map[string]int{}
			for _, pr := range p.children(e) {
				if pr.name != "property" {
					p.errorf(pr, "unknown element <%s> in <properties> (want <property key=\"...\" value=\"...\"/>)", pr.name)
					continue
				}
				key, _ := pr.attr("key")
				val, hasVal := pr.attr("value")
				if l, dup := seen[key]; dup {
					p.errorf(pr, "property %q set twice (first at line %d)", key, l)
					continue
				}
				seen[key] = pr.line
				if !hasVal {
					p.errorf(pr, "<property key=%q> needs a value attribute", key)
					continue
				}
				p.zkProperty(pr, m, key, strings.TrimSpace(val))
			}
		},
	}, nil, nil)
	if m.ConnectString == "" {
		p.warnf(n, `<manager> has no connect-string property; the broker cannot start until it has <property key="connect-string" value="host:port,..."/>`)
	}
	return m
}

func (p *parser) zkProperty(pr *node, m *Manager, key, val string) {
	// Reuse the value parsers on a synthetic leaf carrying the value.
	v := &node{name: key, text: []byte(val), line: pr.line}
	switch key {
	case "connect-string":
		m.ConnectString = val
		if val == "" {
			p.errorf(pr, "connect-string is empty")
		}
	case "namespace":
		m.Namespace = val
	case "session-ms":
		p.millis(v, &m.SessionTimeout)
	case "session-percent":
		p.integer(v, &m.SessionPercent)
	case "connection-ms":
		p.millis(v, &m.ConnectionTimeout)
	case "retries":
		p.integer(v, &m.Retries)
	case "retries-ms":
		p.millis(v, &m.RetriesWait)
	default:
		p.errorf(pr, "unknown <manager> property %q (want one of %s)%s", key, strings.Join(zkProperties, ", "),
			strings.Replace(strings.Replace(suggest(key, zkProperties), "<", "", 1), ">", "", 1))
	}
}

// colocated parses <colocated> under <shared-store> or <replication>.
func (p *parser) colocated(n *node, store Policy) {
	col := defaultColocated()
	col.Store = store
	col.Primary, col.Backup = defaultHA(), defaultHA()
	col.Primary.Policy, col.Primary.Role = store, RolePrimary
	col.Backup.Policy, col.Backup.Role = store, RoleBackup
	var prim, back *node
	seen := map[string]int{}
	for _, e := range p.children(n) {
		if role, isRole := roleOf(e.name); isRole {
			slot := &prim
			if role == RoleBackup {
				slot = &back
			}
			if *slot != nil {
				p.errorf(e, "<colocated> has two %s elements: <%s> (line %d) and <%s>", role, (*slot).name, (*slot).line, e.name)
				continue
			}
			*slot = e
			kind, ok := p.roleKind(e, store)
			if !ok {
				continue
			}
			if kind == replPrimaryZK || kind == replBackupZK {
				p.errorf(e, "colocated backups use the quorum vote; <manager> is not supported in <colocated>")
				continue
			}
			h := &col.Primary
			if role == RoleBackup {
				h = &col.Backup
			}
			p.haOptions(e, kind, h, "<colocated><"+e.name+">")
			continue
		}
		if !p.once(seen, e, "colocated") {
			continue
		}
		switch e.name {
		case "request-backup":
			p.boolean(e, &col.RequestBackup)
		case "max-backups":
			p.integer(e, &col.MaxBackups)
		case "backup-request-retries":
			p.integer(e, &col.BackupRequestRetries)
		case "backup-request-retry-interval":
			p.millis(e, &col.BackupRequestRetryInterval)
		case "backup-port-offset":
			p.integer(e, &col.BackupPortOffset)
		case "excludes":
			col.excludesLine = e.line
			col.Excludes = p.refs(e, "connector-ref")
		default:
			msg := fmt.Sprintf("unknown element <%s> in <colocated>%s", e.name, suggest(e.name, append([]string{"primary", "backup", "master", "slave"}, colocatedOptions...)))
			if haSetters[e.name] != nil {
				msg = fmt.Sprintf("<%s> belongs inside <colocated><primary> or <colocated><backup>, not directly in <colocated>", e.name)
			}
			p.errorf(e, "%s", msg)
		}
	}
	p.cfg.HA.Colocated = col
}

// finishHA derives the coordinator once the store is known.
func (p *parser) finishHA() {
	h := &p.cfg.HA
	shared := h.Policy == PolicySharedStore || h.Colocated != nil && h.Colocated.Store == PolicySharedStore
	switch {
	case shared && p.cfg.Store != nil:
		h.Coordinator = CoordJDBCLease
	case shared:
		h.Coordinator = CoordFileLock
	case h.Policy == PolicyReplication || h.Policy == PolicyColocated:
		h.Coordinator = CoordQuorum
		if h.Manager != nil {
			h.Coordinator = CoordZooKeeper
		}
		if p.cfg.Store != nil {
			p.errorf(p.storeNode, "<database-store> cannot be used with <replication> (line %d): replication copies the file journal; use <shared-store> with a database", h.Line)
		}
	default:
		h.Coordinator = CoordNone
	}
	if !p.cfg.PersistenceEnabled && h.Policy != PolicyNone && h.Policy != PolicyLiveOnly && p.haNode != nil {
		p.errorf(p.haNode, "<%s> needs persistence-enabled true: without a journal there is nothing to share or replicate", h.Element)
	}
	if h.Policy == PolicyColocated {
		// The broker itself runs as the colocated primary.
		col, elem, line, coord := h.Colocated, h.Element, h.Line, h.Coordinator
		*h = col.Primary
		h.Policy, h.Role, h.Element, h.Line, h.Coordinator = PolicyColocated, RolePrimary, elem, line, coord
		h.Colocated = col
	}
}

// isHAElement reports whether name is a policy, role or option of <ha-policy>.
func isHAElement(name string) bool {
	if _, isRole := roleOf(name); isRole || haSetters[name] != nil || name == "colocated" {
		return true
	}
	for _, n := range append(policyNames, colocatedOptions...) {
		if n == name {
			return true
		}
	}
	return false
}
