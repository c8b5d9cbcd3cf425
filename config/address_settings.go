package config

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// DefaultMaxQueues is the default of <max-queues> (a Tandem extension):
// the most queues the broker holds.
const DefaultMaxQueues = 10000

// DefaultMessageExpiryScanPeriod is Artemis's message-expiry-scan-period
// default.
const DefaultMessageExpiryScanPeriod = 30 * time.Second

// DefaultAddressQueueScanPeriod is Artemis's address-queue-scan-period
// default: how often queues and addresses waiting for an auto-delete delay
// are checked.
const DefaultAddressQueueScanPeriod = 30 * time.Second

// AddressSetting is one <address-setting match="..."> of
// <address-settings>. A nil field is not set by this element: the value
// comes from a less specific matching element, or Artemis's default (see
// AddressSettings.For). Settings Tandem does not implement yet are warned
// about and not kept; new ones are added here as pointer fields and in
// AddressPolicy.
type AddressSetting struct {
	// Match is the address pattern, in Artemis's wildcard syntax: words
	// separated by '.', '*' for exactly one word, '#' (last) for any number
	// of words, zero included.
	Match string
	// Line is where the element starts in the file.
	Line int

	// AutoCreateQueues (auto-create-queues): a queue that does not exist
	// is created when a client sends to or consumes from it.
	AutoCreateQueues *bool
	// AutoCreateAddresses (auto-create-addresses): likewise for an address.
	AutoCreateAddresses *bool
	// AutoDeleteQueues (auto-delete-queues): an auto-created queue is
	// deleted once it has no consumers, holds no more messages than
	// AutoDeleteQueuesMessageCount and AutoDeleteQueuesDelay has passed
	// since its last consumer left.
	AutoDeleteQueues *bool
	// AutoDeleteQueuesDelay (auto-delete-queues-delay, ms).
	AutoDeleteQueuesDelay *time.Duration
	// AutoDeleteQueuesMessageCount (auto-delete-queues-message-count): 0
	// deletes only empty queues; -1 deletes whatever they hold.
	AutoDeleteQueuesMessageCount *int64
	// AutoDeleteAddresses (auto-delete-addresses): an auto-created address
	// is deleted once no queue is bound to it and AutoDeleteAddressesDelay
	// has passed.
	AutoDeleteAddresses *bool
	// AutoDeleteAddressesDelay (auto-delete-addresses-delay, ms).
	AutoDeleteAddressesDelay *time.Duration

	// DeadLetterAddress (dead-letter-address): where a message goes once
	// it was delivered MaxDeliveryAttempts times without an ack.
	DeadLetterAddress *string
	// MaxDeliveryAttempts (max-delivery-attempts, default 10; -1: for
	// ever).
	MaxDeliveryAttempts *int
	// ExpiryAddress (expiry-address): where an expired message goes.
	ExpiryAddress *string
	// ExpiryDelay (expiry-delay, ms; -1: none) is the time to live given
	// to a message sent without one.
	ExpiryDelay *time.Duration
	// RedistributionDelay (redistribution-delay, ms; -1: never) is how
	// long a queue without local consumers waits before its messages
	// move to a broker of the cluster whose queue of the same name has
	// consumers (docs/clustering.md).
	RedistributionDelay *time.Duration
	// RedeliveryDelay (redelivery-delay, ms), RedeliveryDelayMultiplier
	// (redelivery-delay-multiplier) and MaxRedeliveryDelay
	// (max-redelivery-delay, ms; default ten times the delay): how long a
	// message that went back to its queue waits before its next delivery.
	RedeliveryDelay           *time.Duration
	RedeliveryDelayMultiplier *float64
	MaxRedeliveryDelay        *time.Duration
	// DefaultQueueRoutingType and DefaultAddressRoutingType
	// (default-queue-routing-type, default-address-routing-type: ANYCAST
	// or MULTICAST): the routing of a queue or address a client creates
	// without saying which.
	DefaultQueueRoutingType   *string
	DefaultAddressRoutingType *string
	// MaxSizeBytes (max-size-bytes, default -1: no limit of its own) is
	// the memory an address's messages may take before AddressFullPolicy
	// applies (global-max-size applies to all addresses together).
	MaxSizeBytes *int64
	// AddressFullPolicy (address-full-policy): PAGE (default), BLOCK,
	// FAIL or DROP.
	AddressFullPolicy *string
	// PageSizeBytes (page-size-bytes, default 10 MiB): see
	// AddressSettings.PageSegmentSize.
	PageSizeBytes *int64
}

// Address full policies (address-full-policy).
const (
	FullPage  = "PAGE"
	FullBlock = "BLOCK"
	FullFail  = "FAIL"
	FullDrop  = "DROP"
)

// Routing types of default-queue-routing-type and
// default-address-routing-type.
const (
	RoutingAnycast   = "ANYCAST"
	RoutingMulticast = "MULTICAST"
)

// Defaults of the message settings (Artemis's).
const (
	DefaultMaxDeliveryAttempts = 10
	DefaultPageSizeBytes       = 10 << 20
)

// AddressPolicy is the effective address settings of one address.
type AddressPolicy struct {
	AutoCreateQueues             bool
	AutoCreateAddresses          bool
	AutoDeleteQueues             bool
	AutoDeleteQueuesDelay        time.Duration
	AutoDeleteQueuesMessageCount int64
	AutoDeleteAddresses          bool
	AutoDeleteAddressesDelay     time.Duration

	DeadLetterAddress   string // "": none
	MaxDeliveryAttempts int    // -1: for ever
	ExpiryAddress       string // "": none
	ExpiryDelay         time.Duration
	// RedistributionDelay is -1 (never, the default) or how long a queue
	// without local consumers waits before its messages move to a
	// cluster peer's queue that has consumers.
	RedistributionDelay time.Duration
	// RedeliveryDelay, its multiplier and its cap (MaxRedeliveryDelay is
	// ten times RedeliveryDelay unless set).
	RedeliveryDelay           time.Duration
	RedeliveryDelayMultiplier float64
	MaxRedeliveryDelay        time.Duration
	// DefaultQueueRoutingType and DefaultAddressRoutingType are "" when
	// not set (Tandem then routes anycast unless the address is
	// multicast only), else RoutingAnycast or RoutingMulticast.
	DefaultQueueRoutingType   string
	DefaultAddressRoutingType string
	MaxSizeBytes              int64 // -1: no limit of its own
	AddressFullPolicy         string
	PageSizeBytes             int64
}

// RedeliveryDelayFor returns how long a message waits before its
// delivery number deliveries+1, after deliveries that were not
// acknowledged: RedeliveryDelay x multiplier^(deliveries-1), at most
// MaxRedeliveryDelay.
func (p AddressPolicy) RedeliveryDelayFor(deliveries uint32) time.Duration {
	if p.RedeliveryDelay <= 0 || deliveries == 0 {
		return 0
	}
	d := float64(p.RedeliveryDelay)
	for i := uint32(1); i < deliveries && d < float64(p.MaxRedeliveryDelay); i++ {
		d *= max(p.RedeliveryDelayMultiplier, 1)
	}
	return min(time.Duration(d), max(p.MaxRedeliveryDelay, p.RedeliveryDelay))
}

// DefaultAddressPolicy is Artemis's defaults (its AddressSettings class):
// auto-create and auto-delete on, no delays, only empty queues deleted.
// (`artemis create` writes auto-delete false into its broker.xml; Tandem's
// default is the code's.)
func DefaultAddressPolicy() AddressPolicy {
	return AddressPolicy{AutoCreateQueues: true, AutoCreateAddresses: true, AutoDeleteQueues: true, AutoDeleteAddresses: true,
		MaxDeliveryAttempts: DefaultMaxDeliveryAttempts, ExpiryDelay: -1, RedistributionDelay: -1, RedeliveryDelayMultiplier: 1,
		MaxSizeBytes: -1, AddressFullPolicy: FullPage, PageSizeBytes: DefaultPageSizeBytes}
}

// AddressSettings are the <address-setting> elements in file order.
type AddressSettings []AddressSetting

// For returns the settings of address: every element whose match fits it
// contributes, the most specific first (Artemis's order: no '#' before
// '#', a longer pattern with '#' before a shorter one, no '*' before '*',
// a literal word before '*' word by word, then the shorter first), each
// field taken from the first element that sets it, else Artemis's default.
func (s AddressSettings) For(address string) AddressPolicy {
	p := DefaultAddressPolicy()
	var matched []*AddressSetting
	for i := range s {
		if MatchAddress(s[i].Match, address) {
			matched = append(matched, &s[i])
		}
	}
	if len(matched) == 0 {
		return p
	}
	slices.SortStableFunc(matched, func(a, b *AddressSetting) int { return compareMatch(a.Match, b.Match) })
	maxRedelivery := false
	// Apply the least specific first, so more specific ones override.
	for i := len(matched) - 1; i >= 0; i-- {
		m := matched[i]
		setBool(&p.AutoCreateQueues, m.AutoCreateQueues)
		setBool(&p.AutoCreateAddresses, m.AutoCreateAddresses)
		setBool(&p.AutoDeleteQueues, m.AutoDeleteQueues)
		setBool(&p.AutoDeleteAddresses, m.AutoDeleteAddresses)
		if m.AutoDeleteQueuesDelay != nil {
			p.AutoDeleteQueuesDelay = *m.AutoDeleteQueuesDelay
		}
		if m.AutoDeleteQueuesMessageCount != nil {
			p.AutoDeleteQueuesMessageCount = *m.AutoDeleteQueuesMessageCount
		}
		if m.AutoDeleteAddressesDelay != nil {
			p.AutoDeleteAddressesDelay = *m.AutoDeleteAddressesDelay
		}
		set(&p.DeadLetterAddress, m.DeadLetterAddress)
		set(&p.MaxDeliveryAttempts, m.MaxDeliveryAttempts)
		set(&p.ExpiryAddress, m.ExpiryAddress)
		set(&p.ExpiryDelay, m.ExpiryDelay)
		set(&p.RedistributionDelay, m.RedistributionDelay)
		set(&p.RedeliveryDelay, m.RedeliveryDelay)
		set(&p.RedeliveryDelayMultiplier, m.RedeliveryDelayMultiplier)
		if m.MaxRedeliveryDelay != nil {
			p.MaxRedeliveryDelay, maxRedelivery = *m.MaxRedeliveryDelay, true
		}
		set(&p.DefaultQueueRoutingType, m.DefaultQueueRoutingType)
		set(&p.DefaultAddressRoutingType, m.DefaultAddressRoutingType)
		set(&p.MaxSizeBytes, m.MaxSizeBytes)
		set(&p.AddressFullPolicy, m.AddressFullPolicy)
		set(&p.PageSizeBytes, m.PageSizeBytes)
	}
	if !maxRedelivery {
		p.MaxRedeliveryDelay = 10 * p.RedeliveryDelay // Artemis's default
	}
	return p
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// PageSegmentSize is the segment size of the paging journal: Tandem pages
// every address into one journal (replicated and fenced with the others),
// so page-size-bytes is one value for the broker, the largest any
// <address-setting> gives (DefaultPageSizeBytes when none does).
func (s AddressSettings) PageSegmentSize() int64 {
	var size int64
	for i := range s {
		if v := s[i].PageSizeBytes; v != nil {
			size = max(size, *v)
		}
	}
	if size == 0 {
		return DefaultPageSizeBytes
	}
	return size
}

func putPtr[T any](m map[string]any, name string, v *T) {
	if v != nil {
		m[name] = *v
	}
}

func setBool(dst *bool, v *bool) {
	if v != nil {
		*dst = *v
	}
}

// Wildcard words of Artemis's address syntax (its defaults; Tandem does
// not implement <wildcard-addresses> to change them).
const (
	wildDelim = "."
	wildAny   = "#"
	wildOne   = "*"
)

// CheckMatch reports whether pattern is a valid address-setting match: '#'
// may only end it (as Artemis requires), and '*' must be a whole word.
// Artemis reads "a.b#" as "a.b.#"; so does Tandem.
func CheckMatch(pattern string) error {
	if i := strings.Index(pattern, wildAny); i >= 0 && i != len(pattern)-1 {
		return fmt.Errorf("%q: '#' may only be the last word", pattern)
	}
	for _, w := range strings.Split(strings.TrimSuffix(pattern, wildAny), wildDelim) {
		if strings.Contains(w, wildOne) && w != wildOne {
			return fmt.Errorf("%q: '*' must be a whole word (between dots), not part of %q", pattern, w)
		}
	}
	return nil
}

// MatchAddress reports whether address matches pattern (see CheckMatch):
// "news.#" matches "news", "news.europe" and "news.europe.sport";
// "news.*" matches "news.europe" only; "#" matches every address.
func MatchAddress(pattern, address string) bool {
	if pattern == wildAny {
		return true
	}
	any := strings.HasSuffix(pattern, wildAny)
	if any {
		pattern = strings.TrimSuffix(strings.TrimSuffix(pattern, wildAny), wildDelim)
	}
	for {
		pw, prest, pmore := strings.Cut(pattern, wildDelim)
		aw, arest, amore := strings.Cut(address, wildDelim)
		switch {
		case pw == wildOne:
			if aw == "" {
				return false
			}
		case pw != aw:
			return false
		}
		if !pmore {
			// The pattern's words are used up: the address must end here,
			// or continue with more words when the pattern ended in '#'.
			return !amore || any
		}
		if !amore {
			return false
		}
		pattern, address = prest, arest
	}
}

// compareMatch orders two matches as Artemis's HierarchicalObjectRepository
// does: negative when a is more specific than b.
func compareMatch(a, b string) int {
	aAny, bAny := strings.Contains(a, wildAny), strings.Contains(b, wildAny)
	switch {
	case aAny && !bAny:
		return 1
	case !aAny && bAny:
		return -1
	case aAny && bAny:
		return len(b) - len(a)
	}
	aOne, bOne := strings.Contains(a, wildOne), strings.Contains(b, wildOne)
	switch {
	case aOne && !bOne:
		return 1
	case !aOne && bOne:
		return -1
	case aOne && bOne:
		as, bs := strings.Split(a, wildDelim), strings.Split(b, wildDelim)
		for i := range as {
			if i >= len(bs) {
				return -1
			}
			if as[i] == wildOne && bs[i] != wildOne {
				return 1
			}
			if as[i] != wildOne && bs[i] == wildOne {
				return -1
			}
		}
	}
	return len(a) - len(b)
}

// addressSettingsImplemented are the <address-setting> children Tandem
// implements; addressSettingsKnown the others Artemis's schema allows
// (each a warning: not supported yet, ignored).
var addressSettingsKnown = setOf(
	"auto-create-dead-letter-resources", "dead-letter-queue-prefix", "dead-letter-queue-suffix",
	"auto-create-expiry-resources", "expiry-queue-prefix", "expiry-queue-suffix", "no-expiry",
	"min-expiry-delay", "max-expiry-delay", "redelivery-collision-avoidance-factor",
	"max-size-messages", "page-limit-bytes", "page-limit-messages",
	"max-size-bytes-reject-threshold", "page-max-cache-size", "max-read-page-messages",
	"prefetch-page-messages", "max-read-page-bytes", "prefetch-page-bytes", "disk-full-policy",
	"page-full-policy", "message-counter-history-day-limit", "last-value-queue",
	"default-last-value-queue", "default-last-value-key", "default-non-destructive",
	"default-exclusive-queue", "default-group-rebalance", "default-group-rebalance-pause-dispatch",
	"default-group-buckets", "default-group-first-key", "default-consumers-before-dispatch",
	"default-delay-before-dispatch", "send-to-dla-on-no-route",
	"slow-consumer-threshold", "slow-consumer-threshold-measurement-unit", "slow-consumer-policy",
	"slow-consumer-check-period", "auto-create-jms-queues", "auto-delete-jms-queues",
	"auto-create-jms-topics", "auto-delete-jms-topics", "auto-delete-created-queues",
	"auto-delete-queues-skip-usage-check", "config-delete-queues",
	"auto-delete-addresses-skip-usage-check", "config-delete-addresses", "config-delete-diverts",
	"management-browse-page-size", "management-message-attribute-size-limit",
	"default-purge-on-no-consumers", "default-max-consumers", "default-consumer-window-size",
	"default-ring-size", "retroactive-message-count", "enable-metrics", "enable-ingress-timestamp",
	"id-cache-size", "initial-queue-buffer-size",
)

var addressSettingsImplemented = []string{
	"auto-create-queues", "auto-create-addresses", "auto-delete-queues", "auto-delete-queues-delay",
	"auto-delete-queues-message-count", "auto-delete-addresses", "auto-delete-addresses-delay",
	"dead-letter-address", "max-delivery-attempts", "expiry-address", "expiry-delay",
	"redelivery-delay", "redelivery-delay-multiplier", "max-redelivery-delay",
	"default-queue-routing-type", "default-address-routing-type", "max-size-bytes",
	"address-full-policy", "page-size-bytes", "redistribution-delay",
}

// addressSettings parses <address-settings>.
func (p *parser) addressSettings(n *node) {
	seen := map[string]int{}
	for _, e := range p.children(n) {
		if e.name != "address-setting" {
			p.errorf(e, "unknown element <%s> in <address-settings> (want <address-setting>)%s", e.name, suggest(e.name, []string{"address-setting"}))
			continue
		}
		s, ok := p.addressSetting(e)
		if !ok {
			continue
		}
		if l, dup := seen[s.Match]; dup {
			// Artemis keeps the last one; so does Tandem, with a word.
			p.warnf(e, "<address-setting match=%q> replaces the one at line %d", s.Match, l)
			for i := range p.cfg.AddressSettings {
				if p.cfg.AddressSettings[i].Match == s.Match {
					p.cfg.AddressSettings = slices.Delete(p.cfg.AddressSettings, i, i+1)
					break
				}
			}
		}
		seen[s.Match] = e.line
		p.cfg.AddressSettings = append(p.cfg.AddressSettings, s)
	}
}

func (p *parser) addressSetting(n *node) (AddressSetting, bool) {
	s := AddressSetting{Line: n.line}
	m, ok := n.attr("match")
	if !ok {
		p.errorf(n, "<address-setting> has no match attribute (e.g. match=\"#\" for every address)")
		return s, false
	}
	if err := CheckMatch(m); err != nil {
		p.errorf(n, "<address-setting> match %v", err)
		return s, false
	}
	s.Match = m
	seen := map[string]int{}
	boolean := func(e *node) *bool {
		var b bool
		p.boolean(e, &b)
		return &b
	}
	for _, e := range p.children(n) {
		if !p.once(seen, e, "address-setting") {
			continue
		}
		switch e.name {
		case "auto-create-queues":
			s.AutoCreateQueues = boolean(e)
		case "auto-create-addresses":
			s.AutoCreateAddresses = boolean(e)
		case "auto-delete-queues":
			s.AutoDeleteQueues = boolean(e)
		case "auto-delete-queues-delay":
			var d time.Duration
			p.millis(e, &d)
			s.AutoDeleteQueuesDelay = &d
		case "auto-delete-queues-message-count":
			var v int
			p.integer(e, &v)
			n := int64(v)
			s.AutoDeleteQueuesMessageCount = &n
		case "auto-delete-addresses":
			s.AutoDeleteAddresses = boolean(e)
		case "auto-delete-addresses-delay":
			var d time.Duration
			p.millis(e, &d)
			s.AutoDeleteAddressesDelay = &d
		case "dead-letter-address":
			s.DeadLetterAddress = p.addressName(e)
		case "expiry-address":
			s.ExpiryAddress = p.addressName(e)
		case "max-delivery-attempts":
			v := DefaultMaxDeliveryAttempts
			p.integer(e, &v)
			s.MaxDeliveryAttempts = &v
		case "expiry-delay":
			d := time.Duration(-1)
			p.millis(e, &d)
			s.ExpiryDelay = &d
		case "redistribution-delay":
			d := time.Duration(-1)
			p.millis(e, &d)
			s.RedistributionDelay = &d
		case "redelivery-delay":
			var d time.Duration
			p.millis(e, &d)
			s.RedeliveryDelay = &d
		case "max-redelivery-delay":
			var d time.Duration
			p.millis(e, &d)
			s.MaxRedeliveryDelay = &d
		case "redelivery-delay-multiplier":
			f := 1.0
			p.float(e, &f)
			s.RedeliveryDelayMultiplier = &f
		case "default-queue-routing-type":
			s.DefaultQueueRoutingType = p.routingType(e)
		case "default-address-routing-type":
			s.DefaultAddressRoutingType = p.routingType(e)
		case "max-size-bytes":
			v := int64(-1)
			p.byteSize(e, &v)
			s.MaxSizeBytes = &v
		case "page-size-bytes":
			v := int64(DefaultPageSizeBytes)
			p.byteSize(e, &v)
			if v%4096 != 0 {
				v -= v % 4096
				p.warnf(e, "page-size-bytes rounded down to %d (a multiple of 4096)", v)
			}
			s.PageSizeBytes = &v
		case "address-full-policy":
			v, ok := p.leaf(e)
			if !ok {
				continue
			}
			switch u := strings.ToUpper(v); u {
			case FullPage, FullBlock, FullFail, FullDrop:
				s.AddressFullPolicy = &u
			default:
				p.errorf(e, "<address-full-policy>: %q is not a policy (want PAGE, BLOCK, FAIL or DROP)", v)
			}
		default:
			if addressSettingsKnown[e.name] {
				p.warnf(e, "<%s> in <address-setting> not supported yet, ignored", e.name)
				continue
			}
			known := append(slices.Clone(addressSettingsImplemented), mapKeys(addressSettingsKnown)...)
			p.errorf(e, "unknown element <%s> in <address-setting>%s", e.name, suggest(e.name, known))
		}
	}
	return s, true
}

// addressName reads an address name (dead-letter-address,
// expiry-address): empty means none.
func (p *parser) addressName(e *node) *string {
	var v string
	p.str(e, &v)
	return &v
}

// routingType reads ANYCAST or MULTICAST.
func (p *parser) routingType(e *node) *string {
	v, ok := p.leaf(e)
	if !ok {
		return nil
	}
	switch u := strings.ToUpper(v); u {
	case RoutingAnycast, RoutingMulticast:
		return &u
	}
	p.errorf(e, "<%s>: %q is not a routing type (want ANYCAST or MULTICAST)", e.name, v)
	return nil
}

func mapKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// notZero refuses 0 for a count limit (max-queues, max-addresses), whose
// range allows -1 (no limit) and 1 up: 0 would refuse everything.
func (p *parser) notZero(n *node, v int) {
	if v == 0 {
		p.errorf(n, "<%s>: 0 would refuse everything (want -1 for no limit, or at least 1)", n.name)
	}
}

// addressSettingsView renders the settings for `tandem config check`: each
// element with the fields it sets, under Artemis's names (delays in ms).
func addressSettingsView(s AddressSettings) []map[string]any {
	out := []map[string]any{}
	for _, a := range s {
		m := map[string]any{"match": a.Match}
		put := func(name string, v any, set bool) {
			if set {
				m[name] = v
			}
		}
		deref := func(b *bool) bool { return b != nil && *b }
		put("auto-create-queues", deref(a.AutoCreateQueues), a.AutoCreateQueues != nil)
		put("auto-create-addresses", deref(a.AutoCreateAddresses), a.AutoCreateAddresses != nil)
		put("auto-delete-queues", deref(a.AutoDeleteQueues), a.AutoDeleteQueues != nil)
		if a.AutoDeleteQueuesDelay != nil {
			m["auto-delete-queues-delay"] = ms(*a.AutoDeleteQueuesDelay)
		}
		if a.AutoDeleteQueuesMessageCount != nil {
			m["auto-delete-queues-message-count"] = *a.AutoDeleteQueuesMessageCount
		}
		put("auto-delete-addresses", deref(a.AutoDeleteAddresses), a.AutoDeleteAddresses != nil)
		if a.AutoDeleteAddressesDelay != nil {
			m["auto-delete-addresses-delay"] = ms(*a.AutoDeleteAddressesDelay)
		}
		putPtr(m, "dead-letter-address", a.DeadLetterAddress)
		putPtr(m, "max-delivery-attempts", a.MaxDeliveryAttempts)
		putPtr(m, "expiry-address", a.ExpiryAddress)
		for name, d := range map[string]*time.Duration{"expiry-delay": a.ExpiryDelay, "redelivery-delay": a.RedeliveryDelay,
			"max-redelivery-delay": a.MaxRedeliveryDelay, "redistribution-delay": a.RedistributionDelay} {
			if d != nil {
				m[name] = ms(*d)
			}
		}
		putPtr(m, "redelivery-delay-multiplier", a.RedeliveryDelayMultiplier)
		putPtr(m, "default-queue-routing-type", a.DefaultQueueRoutingType)
		putPtr(m, "default-address-routing-type", a.DefaultAddressRoutingType)
		putPtr(m, "max-size-bytes", a.MaxSizeBytes)
		putPtr(m, "address-full-policy", a.AddressFullPolicy)
		putPtr(m, "page-size-bytes", a.PageSizeBytes)
		out = append(out, m)
	}
	return out
}
