package config

import (
	"fmt"
	"strconv"
)

// Unit is what a numeric element's value counts, as it is written in
// broker.xml (and shown by `tandem config check`).
type Unit string

// Units of numeric elements.
const (
	Count   Unit = ""      // a plain number
	Bytes   Unit = "bytes" // a size, with Artemis's byte notation (10M, 10MiB)
	Millis  Unit = "ms"
	Nanos   Unit = "ns"
	Seconds Unit = "s"
	Ratio   Unit = "ratio" // a decimal number
)

// Range is the values a numeric element accepts, bounds included, in its
// Unit.
type Range struct {
	Min, Max int64
	Unit     Unit
}

// String renders "[min, max]" and the unit: "[2, 1000]", "[-1, 86400000] ms".
func (r Range) String() string {
	s := "[" + strconv.FormatInt(r.Min, 10) + ", " + strconv.FormatInt(r.Max, 10) + "]"
	if r.Unit != Count && r.Unit != Ratio {
		s += " " + string(r.Unit)
	}
	return s
}

const (
	hourMs = 3_600_000
	dayMs  = 24 * hourMs
)

// ranges holds the range of every numeric element the parser reads (and
// of the ZooKeeper <manager> properties), keyed by element name: one
// table for `tandem config check` and `tandem run`, which read the file
// with the same parser. Minimums are Artemis's (a value Artemis accepts
// below them is refused by Artemis too, or means nothing); maximums are
// Tandem's: the largest value the broker can run with without filling a
// disk, exhausting memory or overflowing a duration, generous for any
// real deployment. TestRangesCoverElements checks that every element the
// parser reads as a number is here, with the unit its parser uses, and
// nothing else; docs/configuration.md lists them.
var ranges = map[string]Range{
	// <core>: the journal. A segment is read whole at load, so its size
	// bounds the memory a load takes.
	"journal-file-size":          {64 << 10, 1 << 30, Bytes},
	"journal-min-files":          {2, 1000, Count},
	"journal-pool-files":         {-1, 1000, Count}, // -1: no limit
	"journal-buffer-timeout":     {0, 1_000_000_000, Nanos},
	"journal-buffer-size":        {4096, 1 << 30, Bytes},
	"journal-max-io":             {1, 4096, Count}, // above 2048 runs as 2048 (io_uring ring)
	"journal-compact-percentage": {0, 100, Count},
	"journal-compact-min-files":  {0, 1000, Count},
	// <core>: connections and duplicate detection.
	"connection-ttl-override": {-1, dayMs, Millis}, // -1: the client's TTL
	"id-cache-size":           {0, 1_000_000, Count},
	// <core>: limits against misbehaving clients (docs/limits.md); 0 is in
	// the range but refused by the parser (it would refuse every client,
	// close every connection).
	"connection-ttl-max":  {-1, dayMs, Millis},    // -1: no cap
	"connections-allowed": {-1, 1_000_000, Count}, // -1: none of its own (the open-file limit still applies)
	// <core>: queues and addresses. An idle queue costs about 1 KiB. 0 is
	// in the range of the limits but refused by the parser (notZero).
	"max-queues":                {-1, 1_000_000, Count}, // -1: no limit
	"max-addresses":             {-1, 1_000_000, Count}, // -1: no limit
	"address-queue-scan-period": {-1, dayMs, Millis},    // -1 or 0: never
	// <address-settings><address-setting>.
	"auto-delete-queues-delay":         {0, 30 * dayMs, Millis},
	"auto-delete-queues-message-count": {-1, 1_000_000_000, Count}, // -1: any number
	"auto-delete-addresses-delay":      {0, 30 * dayMs, Millis},
	"max-delivery-attempts":            {-1, 1_000_000, Count},     // -1: for ever
	"expiry-delay":                     {-1, 3650 * dayMs, Millis}, // -1: none
	"redistribution-delay":             {-1, 3650 * dayMs, Millis}, // -1: never
	"redelivery-delay":                 {0, 30 * dayMs, Millis},
	"max-redelivery-delay":             {0, 30 * dayMs, Millis},
	"redelivery-delay-multiplier":      {1, 1000, Ratio},
	"max-size-bytes":                   {-1, 1 << 50, Bytes}, // -1: no limit of its own
	// A page segment is read in windows; records never cross it, so it
	// bounds the largest paged message (as journal-file-size does).
	"page-size-bytes": {64 << 10, 1 << 30, Bytes},
	// <core>: memory and expiry.
	"global-max-size":            {-1, 1 << 50, Bytes}, // -1: half of the memory
	"message-expiry-scan-period": {-1, dayMs, Millis},  // -1 or 0: never

	// <ha-policy> options.
	"failback-delay":                     {0, dayMs, Millis},
	"initial-replication-sync-timeout":   {0, dayMs, Millis},
	"quorum-size":                        {-1, 1000, Count},
	"vote-retries":                       {0, 1000, Count},
	"vote-retry-wait":                    {0, hourMs, Millis},
	"quorum-vote-wait":                   {1, 3600, Seconds},
	"retry-replication-wait":             {0, hourMs, Millis},
	"max-saved-replicated-journals-size": {-1, 1000, Count},
	"commit-interval":                    {-1, 1_000_000, Count}, // <scale-down>
	// <manager><properties> (ZooKeeper).
	"session-ms":      {1, hourMs, Millis},
	"session-percent": {1, 100, Count},
	"connection-ms":   {1, hourMs, Millis},
	"retries":         {0, 1000, Count},
	"retries-ms":      {0, hourMs, Millis},
	// <colocated>.
	"max-backups":                   {0, 100, Count},
	"backup-request-retries":        {-1, 1000, Count},
	"backup-request-retry-interval": {0, hourMs, Millis},
	"backup-port-offset":            {0, 65535, Count},

	// <cluster-connection>.
	"max-hops":                  {0, 100, Count},
	"retry-interval":            {0, hourMs, Millis},
	"retry-interval-multiplier": {1, 100, Ratio},
	"max-retry-interval":        {0, hourMs, Millis},
	"reconnect-attempts":        {-1, 1_000_000, Count},
	"initial-connect-attempts":  {-1, 1_000_000, Count},
	"call-timeout":              {0, hourMs, Millis},
	"check-period":              {0, hourMs, Millis},
	"connection-ttl":            {0, dayMs, Millis},
	// <broadcast-group> and <discovery-group>.
	"group-port":       {0, 65535, Count},
	"broadcast-period": {0, hourMs, Millis},
	"refresh-timeout":  {0, hourMs, Millis},

	// <database-store>.
	"jdbc-lock-expiration":          {1, hourMs, Millis},
	"jdbc-lock-renew-period":        {1, hourMs, Millis},
	"jdbc-network-timeout":          {0, hourMs, Millis},
	"jdbc-lock-acquisition-timeout": {-1, dayMs, Millis}, // -1: wait for ever
	"jdbc-allowed-time-diff":        {0, hourMs, Millis},
	"jdbc-journal-sync-period":      {0, 60_000, Millis},

	// <core>: security (docs/security.md); 0 caches nothing.
	"security-invalidation-interval": {0, dayMs, Millis},
}

// RangeOf returns the range of a numeric element (or <manager> property)
// and whether name is one.
func RangeOf(name string) (Range, bool) {
	r, ok := ranges[name]
	return r, ok
}

// RangeError is a numeric value outside its element's range.
type RangeError struct {
	Element string
	Value   string // as parsed (a decimal number)
	Range   Range
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("%s %s out of range %v", e.Element, e.Value, e.Range)
}

// checkRange is the one check of every numeric element's value, in the
// element's unit: nil, or a *RangeError naming the element, the value and
// the range.
func checkRange(name string, v int64) error {
	r, ok := ranges[name]
	if !ok {
		return fmt.Errorf("%s: no range is defined for this element (a bug in Tandem)", name)
	}
	if v < r.Min || v > r.Max {
		return &RangeError{Element: name, Value: strconv.FormatInt(v, 10), Range: r}
	}
	return nil
}

// checkRangeFloat is checkRange for a decimal number.
func checkRangeFloat(name string, f float64) error {
	r, ok := ranges[name]
	if !ok {
		return fmt.Errorf("%s: no range is defined for this element (a bug in Tandem)", name)
	}
	if f < float64(r.Min) || f > float64(r.Max) {
		return &RangeError{Element: name, Value: strconv.FormatFloat(f, 'g', -1, 64), Range: r}
	}
	return nil
}

// MaxJournalDisk bounds the disk the message journal claims by
// configuration alone: journal-min-files preallocated segments, and
// journal-pool-files reclaimed segments kept for reuse, each of
// journal-file-size bytes.
const MaxJournalDisk = 256 << 30

// checkDerived checks the quantities the broker derives from several
// elements at run time. It runs only once every element is in its range,
// so the products cannot overflow (at most 1000 x 1 GiB).
func (p *parser) checkDerived() {
	j := &p.cfg.Journal
	for _, d := range []struct {
		name  string
		files int
		what  string
	}{
		{"journal-min-files", j.MinFiles, "preallocated"},
		{"journal-pool-files", j.PoolFiles, "kept for reuse"},
	} {
		if d.files <= 0 {
			continue
		}
		if total := int64(d.files) * j.FileSize; total > MaxJournalDisk {
			n := p.numbers[d.name]
			if n == nil {
				n = p.numbers["journal-file-size"]
			}
			if n == nil { // not reachable with the defaults; never panic
				n = &node{name: d.name, line: 1}
			}
			p.errorf(n, "%s %d x journal-file-size %d = %d GiB of segments %s, more than %d GiB",
				d.name, d.files, j.FileSize, (total+1<<30-1)>>30, d.what, MaxJournalDisk>>30)
		}
	}
}
