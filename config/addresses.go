package config

import (
	"github.com/tandemmq/tandem/selector"
)

// AddressDef is one <address name="..."> of <addresses>: an address the
// broker creates at start (when missing), with its routing types and
// queues.
type AddressDef struct {
	Name      string
	Anycast   bool // an <anycast> element is present
	Multicast bool // a <multicast> element is present
	Queues    []QueueDef
	Line      int
}

// QueueDef is a <queue name="..."> inside <anycast> or <multicast>.
type QueueDef struct {
	Name string
	// Routing is RoutingAnycast or RoutingMulticast (the parent element).
	Routing string
	// Durable (<durable>, default true).
	Durable bool
	// Filter (<filter string="..."/>) is a selector (package selector):
	// only matching messages are routed to the queue. "" is none.
	Filter string
	Line   int
}

// queueAttrsIgnored are <queue> attributes Artemis allows that Tandem does
// not implement (warned about, ignored).
var queueAttrsIgnored = setOf("max-consumers", "purge-on-no-consumers", "exclusive", "group-rebalance",
	"group-rebalance-pause-dispatch", "group-buckets", "group-first-key", "last-value", "last-value-key",
	"non-destructive", "consumers-before-dispatch", "delay-before-dispatch", "ring-size", "enabled",
	"internal", "auto-delete", "auto-delete-delay", "auto-delete-message-count", "configuration-managed")

// addresses parses <addresses>.
func (p *parser) addresses(n *node) {
	names := map[string]int{}
	queues := map[string]int{}
	for _, e := range p.children(n) {
		if e.name != "address" {
			p.errorf(e, "unknown element <%s> in <addresses> (want <address>)%s", e.name, suggest(e.name, []string{"address"}))
			continue
		}
		name, ok := e.attr("name")
		if !ok || name == "" {
			p.errorf(e, "<address> has no name attribute")
			continue
		}
		if l, dup := names[name]; dup {
			p.errorf(e, "<address name=%q> is defined twice (first at line %d)", name, l)
			continue
		}
		names[name] = e.line
		a := AddressDef{Name: name, Line: e.line}
		seen := map[string]int{}
		for _, r := range p.children(e) {
			if !p.once(seen, r, "address") {
				continue
			}
			var routing string
			switch r.name {
			case "anycast":
				routing, a.Anycast = RoutingAnycast, true
			case "multicast":
				routing, a.Multicast = RoutingMulticast, true
			default:
				p.errorf(r, "unknown element <%s> in <address> (want <anycast> or <multicast>)%s", r.name, suggest(r.name, []string{"anycast", "multicast"}))
				continue
			}
			for _, q := range p.children(r) {
				if q.name != "queue" {
					p.errorf(q, "unknown element <%s> in <%s> (want <queue>)", q.name, r.name)
					continue
				}
				qd, ok := p.queueDef(q, routing)
				if !ok {
					continue
				}
				if l, dup := queues[qd.Name]; dup {
					p.errorf(q, "<queue name=%q> is defined twice (first at line %d)", qd.Name, l)
					continue
				}
				queues[qd.Name] = q.line
				a.Queues = append(a.Queues, qd)
			}
		}
		if !a.Anycast && !a.Multicast {
			p.errorf(e, "<address name=%q> has neither <anycast> nor <multicast>", name)
			continue
		}
		p.cfg.Addresses = append(p.cfg.Addresses, a)
	}
}

func (p *parser) queueDef(n *node, routing string) (QueueDef, bool) {
	q := QueueDef{Routing: routing, Durable: true, Line: n.line}
	name, ok := n.attr("name")
	if !ok || name == "" {
		p.errorf(n, "<queue> has no name attribute")
		return q, false
	}
	q.Name = name
	for _, at := range n.attrs {
		switch {
		case at.Name.Space == "xmlns" || at.Name.Local == "xmlns":
		case at.Name.Local == "name":
		case queueAttrsIgnored[at.Name.Local]:
			p.warnf(n, "<queue %s=...> not supported yet, ignored", at.Name.Local)
		default:
			p.errorf(n, "unknown attribute %s of <queue>", at.Name.Local)
		}
	}
	seen := map[string]int{}
	for _, e := range p.children(n) {
		if !p.once(seen, e, "queue") {
			continue
		}
		switch e.name {
		case "durable":
			p.boolean(e, &q.Durable)
		case "filter":
			f, ok := e.attr("string")
			if !ok {
				p.errorf(e, "<filter> has no string attribute (e.g. <filter string=\"color = 'red'\"/>)")
				continue
			}
			if _, err := selector.Parse(f); err != nil {
				p.errorf(e, "<filter string=%q>: %v", f, err)
				continue
			}
			q.Filter = f
		case "user":
			p.warnf(e, "<user> of a queue not supported yet, ignored")
		default:
			p.errorf(e, "unknown element <%s> in <queue>%s", e.name, suggest(e.name, []string{"durable", "filter", "user"}))
		}
	}
	return q, true
}

// addressesView renders <addresses> for `tandem config check`.
func addressesView(as []AddressDef) []map[string]any {
	out := []map[string]any{}
	for _, a := range as {
		var routing []string
		if a.Anycast {
			routing = append(routing, RoutingAnycast)
		}
		if a.Multicast {
			routing = append(routing, RoutingMulticast)
		}
		qs := []map[string]any{}
		for _, q := range a.Queues {
			m := map[string]any{"name": q.Name, "routing-type": q.Routing, "durable": q.Durable}
			if q.Filter != "" {
				m["filter"] = q.Filter
			}
			qs = append(qs, m)
		}
		out = append(out, map[string]any{"name": a.Name, "routing-types": routing, "queues": qs})
	}
	return out
}
