package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode"

	"github.com/tandemmq/tandem/aio"
)

// maxErrors stops a badly broken file from producing pages of errors.
const maxErrors = 20

type parser struct {
	file  string
	cfg   *Config
	errs  []error
	warns []Warning

	maxIOSet   bool
	maxAddrSet bool
	numbers    map[string]*node // the numeric elements read, by name (the last one)
	haNode     *node
	storeNode  *node
	connectors map[string]bool
	discovery  map[string]bool
}

func (p *parser) errorf(n *node, format string, args ...any) {
	if len(p.errs) < maxErrors {
		p.errs = append(p.errs, &Error{File: p.file, Line: n.line, Msg: fmt.Sprintf(format, args...)})
	}
}

func (p *parser) warnf(n *node, format string, args ...any) {
	p.warns = append(p.warns, Warning{File: p.file, Line: n.line, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) unsupported(n *node) {
	p.warnf(n, "<%s> not supported yet, ignored", n.name)
}

// Load reads the broker.xml at path. Relative paths inside it are relative
// to the instance directory: the parent of path's directory when that is
// named etc (DIR/etc/broker.xml), else path's directory. On error the
// Config is nil; the warnings found so far are returned either way.
func Load(path string) (*Config, []Warning, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	dir := filepath.Dir(path)
	if filepath.Base(dir) == "etc" {
		dir = filepath.Dir(dir)
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return parse(path, f, dir)
}

// Parse reads a broker.xml from r; name is used in messages. Relative paths
// stay relative to the current directory.
func Parse(name string, r io.Reader) (*Config, []Warning, error) {
	return parse(name, r, "")
}

// ParseInstance is Parse with relative paths resolved against instanceDir,
// as Load resolves them against the file's instance directory: a broker
// that hosts another broker's colocated backup parses that broker's
// configuration with its instance directory.
func ParseInstance(name string, r io.Reader, instanceDir string) (*Config, []Warning, error) {
	return parse(name, r, instanceDir)
}

func parse(name string, r io.Reader, instanceDir string) (*Config, []Warning, error) {
	root, warns, err := readTree(name, r)
	if err != nil {
		return nil, warns, err
	}
	c := Default()
	c.File = name
	c.InstanceDir = instanceDir
	c.Dirs = Directories{}
	p := &parser{file: name, cfg: c, warns: warns, connectors: map[string]bool{}, discovery: map[string]bool{}, numbers: map[string]*node{}}
	p.configuration(root)
	if len(p.errs) == 0 {
		p.finish()
	}
	if len(p.errs) > 0 {
		return nil, p.warns, errors.Join(p.errs...)
	}
	c.resolveDirs()
	c.resolveSecurity()
	sort.SliceStable(p.warns, func(i, j int) bool { return p.warns[i].Line < p.warns[j].Line })
	return c, p.warns, nil
}

// children returns n's elements in Artemis's namespaces. XInclude is
// warned about; any other namespace is an error. Stray text in a container
// is an error, except the manual's "..." placeholders.
func (p *parser) children(n *node) []*node {
	if t := strings.TrimSpace(string(n.text)); strings.ContainsFunc(t, notEllipsis) {
		p.errorf(n, "unexpected text %q in <%s>", abbreviate(t), n.name)
	}
	out := make([]*node, 0, len(n.children))
	for _, c := range n.children {
		switch {
		case artemisSpaces[c.space] || strings.HasPrefix(c.space, "urn:activemq:"):
			out = append(out, c)
		case c.space == xincludeSpace:
			p.warnf(c, "<xi:%s> not supported yet, ignored", c.name)
		default:
			p.errorf(c, "<%s> in namespace %q: not an Artemis broker.xml element", c.name, c.space)
		}
	}
	return out
}

// notEllipsis is true for characters other than white space and the
// manual's "..." placeholders.
func notEllipsis(r rune) bool { return r != '.' && r != '…' && !unicode.IsSpace(r) }

func abbreviate(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:40]) + "..."
	}
	return s
}

// once reports an error and returns false when c's name was seen before.
func (p *parser) once(seen map[string]int, c *node, parent string) bool {
	if l, ok := seen[c.name]; ok {
		p.errorf(c, "<%s> appears twice in <%s> (first at line %d)", c.name, parent, l)
		return false
	}
	seen[c.name] = c.line
	return true
}

func (p *parser) configuration(root *node) {
	if root.name != "configuration" {
		p.errorf(root, "root element is <%s>, want <configuration>", root.name)
		return
	}
	var core *node
	for _, c := range p.children(root) {
		switch c.name {
		case "core":
			if core != nil {
				p.errorf(c, "<core> appears twice in <configuration> (first at line %d)", core.line)
				continue
			}
			core = c
		case "jms", "security-manager", "broker-plugins":
			p.unsupported(c)
		default:
			if isCoreSetting(c.name) {
				p.errorf(c, "<%s> belongs inside <core>, not directly in <configuration>", c.name)
				continue
			}
			p.errorf(c, "unknown element <%s> in <configuration> (want <core>)%s", c.name, suggest(c.name, []string{"core"}))
		}
	}
	if core == nil {
		p.errorf(root, "<configuration> has no <core> element")
		return
	}
	p.core(core)
}

// coreSettings lists what <core> implements, for suggestions.
var coreSettings = []string{
	"name", "persistence-enabled", "journal-type", "journal-directory", "bindings-directory",
	"paging-directory", "large-messages-directory", "journal-file-size", "journal-min-files",
	"journal-pool-files", "journal-buffer-timeout", "journal-buffer-size", "journal-max-io",
	"journal-datasync", "journal-sync-transactional", "journal-sync-non-transactional",
	"journal-compact-percentage", "journal-compact-min-files", "node-manager-lock-directory",
	"create-journal-dir", "create-bindings-dir", "acceptors", "connectors", "cluster-connections",
	"broadcast-groups", "discovery-groups", "store", "connection-ttl-override", "id-cache-size",
	"persist-id-cache", "security-enabled", "cluster-user", "cluster-password", "security",
	"management-http-address", "ha-policy", "address-settings", "address-queue-scan-period",
	"max-queues", "max-addresses", "connection-ttl-max", "connections-allowed", "pprof-enabled",
	"security-settings", "security-invalidation-interval", "management-http-ssl",
	"addresses", "global-max-size", "message-expiry-scan-period",
}

// isCoreSetting reports whether name is an element of <core>.
func isCoreSetting(name string) bool {
	for _, s := range coreSettings {
		if s == name {
			return true
		}
	}
	return unsupportedCore[name]
}

func (p *parser) core(n *node) {
	c := p.cfg
	seen := map[string]int{}
	for _, e := range p.children(n) {
		if !p.once(seen, e, "core") {
			continue
		}
		switch e.name {
		case "name":
			p.str(e, &c.Name)
		case "persistence-enabled":
			p.boolean(e, &c.PersistenceEnabled)
			if !c.PersistenceEnabled {
				p.warnf(e, "persistence-enabled is false: messages are kept in memory only and lost when the broker stops")
			}
		case "journal-type":
			p.journalType(e)
		case "journal-directory":
			p.dir(e, &c.Dirs.Journal, &c.Dirs.set.journal)
		case "bindings-directory":
			p.dir(e, &c.Dirs.Bindings, &c.Dirs.set.bindings)
		case "paging-directory":
			p.dir(e, &c.Dirs.Paging, &c.Dirs.set.paging)
		case "large-messages-directory":
			p.dir(e, &c.Dirs.LargeMessages, &c.Dirs.set.large)
		case "node-manager-lock-directory":
			p.dir(e, &c.Dirs.NodeManagerLock, &c.Dirs.set.lock)
		case "create-journal-dir", "create-bindings-dir":
			var b bool
			p.boolean(e, &b) // Tandem always creates its directories
		case "journal-file-size":
			p.byteSize(e, &c.Journal.FileSize)
			if c.Journal.FileSize%4096 != 0 {
				c.Journal.FileSize -= c.Journal.FileSize % 4096
				p.warnf(e, "journal-file-size rounded down to %d (a multiple of 4096)", c.Journal.FileSize)
			}
		case "journal-min-files":
			p.integer(e, &c.Journal.MinFiles)
		case "journal-pool-files":
			p.integer(e, &c.Journal.PoolFiles)
		case "journal-buffer-timeout":
			p.nanos(e, &c.Journal.BufferTimeout)
		case "journal-buffer-size":
			var v int64
			p.byteSize(e, &v)
			if v > 0 {
				c.Journal.BufferSize = int(v)
			}
		case "journal-max-io":
			p.integer(e, &c.Journal.MaxIO)
			p.maxIOSet = true
		case "journal-datasync":
			p.boolean(e, &c.Journal.Datasync)
			if !c.Journal.Datasync {
				p.warnf(e, "journal-datasync is false: acknowledged messages can be lost on a power failure or kernel crash")
			}
		case "journal-sync-transactional":
			p.boolean(e, &c.Journal.SyncTransactional)
		case "journal-sync-non-transactional":
			p.boolean(e, &c.Journal.SyncNonTransactional)
		case "journal-compact-percentage":
			p.integer(e, &c.Journal.CompactPercentage)
		case "journal-compact-min-files":
			p.integer(e, &c.Journal.CompactMinFiles)
		case "acceptors":
			c.Acceptors = p.urls(e, "acceptor")
		case "connectors":
			c.Connectors = p.urls(e, "connector")
		case "cluster-connections":
			p.clusterConnections(e)
		case "broadcast-groups":
			p.broadcastGroups(e)
		case "discovery-groups":
			p.discoveryGroups(e)
		case "store":
			p.storeNode = e
			p.store(e)
		case "connection-ttl-override":
			p.millis(e, &c.ConnectionTTLOverride)
		case "connection-ttl-max":
			p.millis(e, &c.ConnectionTTLMax)
			if c.ConnectionTTLMax == 0 {
				p.errorf(e, "<connection-ttl-max>: 0 would close every connection at once (want -1 for no cap, or milliseconds)")
			}
		case "connections-allowed":
			p.integer(e, &c.ConnectionsAllowed)
			if c.ConnectionsAllowed == 0 {
				p.errorf(e, "<connections-allowed>: 0 would refuse every client (want -1 for no limit, or a number)")
			}
		case "pprof-enabled":
			var b bool
			p.boolean(e, &b)
			c.PprofEnabled = &b
		case "id-cache-size":
			p.integer(e, &c.IDCacheSize)
		case "persist-id-cache":
			p.boolean(e, &c.PersistIDCache)
		case "security-enabled":
			p.boolean(e, &c.SecurityEnabled)
		case "cluster-user":
			p.str(e, &c.ClusterUser)
		case "cluster-password":
			p.str(e, &c.ClusterPassword)
		case "security":
			p.security(e)
		case "security-settings":
			p.securitySettings(e)
		case "security-invalidation-interval":
			p.millis(e, &c.Security.InvalidationInterval)
		case "management-http-ssl":
			p.managementSSL(e)
		case "management-http-address":
			p.str(e, &c.ManagementAddress)
		case "ha-policy":
			p.haNode = e
			p.haPolicy(e)
		case "address-settings":
			p.addressSettings(e)
		case "address-queue-scan-period":
			p.millis(e, &c.AddressQueueScanPeriod)
		case "max-queues":
			p.integer(e, &c.MaxQueues)
			p.notZero(e, c.MaxQueues)
		case "addresses":
			p.addresses(e)
		case "global-max-size":
			p.byteSize(e, &c.GlobalMaxSize)
			if c.GlobalMaxSize == 0 {
				p.errorf(e, "<global-max-size>: 0 would page every message (want -1 for half of the memory, or a size)")
			}
		case "message-expiry-scan-period":
			p.millis(e, &c.MessageExpiryScanPeriod)
		case "max-addresses":
			p.integer(e, &c.MaxAddresses)
			p.notZero(e, c.MaxAddresses)
			p.maxAddrSet = true
		default:
			if unsupportedCore[e.name] {
				p.unsupported(e)
				continue
			}
			if isHAElement(e.name) {
				p.errorf(e, "<%s> belongs inside <ha-policy>, not directly in <core>", e.name)
				continue
			}
			p.errorf(e, "unknown element <%s> in <core>%s", e.name, suggest(e.name, append(coreSettings, unsupportedCoreNames()...)))
		}
	}
}

func (p *parser) dir(n *node, dst *string, set *bool) {
	p.str(n, dst)
	if *dst == "" {
		p.errorf(n, "<%s> is empty", n.name)
		return
	}
	*set = true
}

func (p *parser) journalType(n *node) {
	v, ok := p.leaf(n)
	if !ok {
		return
	}
	k, warn, err := aio.ParseJournalType(v)
	if err != nil {
		p.errorf(n, "<journal-type>: %q is not a journal type (want ASYNCIO, NIO, DIRECT or MAPPED)", v)
		return
	}
	if warn {
		p.warnf(n, "journal-type MAPPED is not supported; running as NIO")
	}
	p.cfg.Journal.Type = strings.ToUpper(v)
	p.cfg.Journal.Backend = k
}

// finish applies defaults that depend on other settings and checks
// references between sections.
func (p *parser) finish() {
	c := p.cfg
	if !p.maxIOSet && c.Journal.Backend != aio.IOUring {
		c.Journal.MaxIO = 1
	}
	if !p.maxAddrSet {
		c.MaxAddresses = c.MaxQueues
	}
	p.finishHA()
	p.checkRefs()
	p.checkDerived()
}
