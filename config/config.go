package config

import (
	"fmt"
	"time"

	"github.com/tandemmq/tandem/aio"
)

// Config is a broker's effective configuration: what broker.xml says, with
// Artemis's defaults (and Tandem's documented differences) for the rest.
type Config struct {
	// File is the configuration file read, "" for Default().
	File string
	// InstanceDir is the broker instance directory; relative paths in the
	// file are relative to it. "" means the current directory.
	InstanceDir string

	// Name is the node name (<name>), used in topology and the banner.
	Name string
	// PersistenceEnabled (<persistence-enabled>, default true): false keeps
	// everything in memory.
	PersistenceEnabled bool

	// Journal holds the journal-* settings.
	Journal Journal
	// Dirs are the data directories, resolved against InstanceDir.
	Dirs Directories
	// Store is the database store; nil means the file journal.
	Store *DatabaseStore

	// Acceptors are the listeners (<acceptors>), in file order.
	Acceptors []Acceptor
	// Connectors are the addresses other nodes and clients use to reach this
	// broker and its peers (<connectors>).
	Connectors []Connector
	// ClusterConnections are the <cluster-connections>.
	ClusterConnections []ClusterConnection
	// BroadcastGroups are the <broadcast-groups> (parsed, not used yet).
	BroadcastGroups []BroadcastGroup
	// DiscoveryGroups are the <discovery-groups> (parsed, not used yet).
	DiscoveryGroups []DiscoveryGroup

	// ConnectionTTLOverride (<connection-ttl-override>, ms; -1 = the
	// client's connection-ttl) overrides how long a silent connection lives.
	ConnectionTTLOverride time.Duration
	// ConnectionTTLMax (Tandem's <connection-ttl-max>, ms, default 300000;
	// -1 = no cap) caps the connection-ttl a client asks for.
	ConnectionTTLMax time.Duration
	// ConnectionsAllowed (Tandem's <connections-allowed>, default 4096;
	// -1 = no limit of its own) limits client connections over all
	// acceptors; the open-file limit lowers it further (see
	// docs/limits.md). Each acceptor may also have Artemis's
	// connectionsAllowed URL parameter.
	ConnectionsAllowed int
	// PprofEnabled (Tandem's <pprof-enabled>) serves /debug/pprof/ on the
	// management address; nil (not set) means on only when that address
	// is loopback.
	PprofEnabled *bool
	// IDCacheSize (<id-cache-size>, default 20000) is the duplicate-ID cache
	// size per address.
	IDCacheSize int
	// PersistIDCache (<persist-id-cache>, default true) journals the
	// duplicate-ID cache.
	PersistIDCache bool

	// SecurityEnabled (<security-enabled>, default true). With no Users,
	// anonymous access is still allowed (see AnonymousAllowed).
	SecurityEnabled bool
	// ClusterUser and ClusterPassword authenticate brokers to each other
	// (cluster connections, replication).
	ClusterUser     string
	ClusterPassword string
	// Users are Tandem's users (<security><users>).
	Users []User
	// Security is the rest of the security configuration: the users
	// file, <require-login>, <security-settings>, the cache interval,
	// TLS on the management address (security.go).
	Security Security

	// ManagementAddress is the management HTTP listener (Tandem's
	// <management-http-address>, default 127.0.0.1:8161).
	ManagementAddress string

	// AddressSettings are the <address-settings> (auto-create and
	// auto-delete of queues and addresses); see AddressSettings.For.
	AddressSettings AddressSettings
	// AddressQueueScanPeriod (<address-queue-scan-period>, ms, default
	// 30000; 0 or -1 never scans) is how often queues and addresses whose
	// auto-delete waits for a delay, or for messages to go, are checked.
	AddressQueueScanPeriod time.Duration
	// MaxQueues (Tandem's <max-queues>, default DefaultMaxQueues; -1 = no
	// limit) caps the number of queues of every kind: creating one more
	// is refused.
	MaxQueues int
	// MaxAddresses (Tandem's <max-addresses>, default: MaxQueues) caps the
	// number of addresses likewise.
	MaxAddresses int
	// Addresses are the <addresses> the broker creates at start.
	Addresses []AddressDef
	// GlobalMaxSize (<global-max-size>, bytes; -1, the default, is half of
	// the memory the process may use, worked out when the broker starts)
	// bounds the memory all addresses' messages take together: beyond it
	// every address applies its address-full-policy.
	GlobalMaxSize int64
	// MessageExpiryScanPeriod (<message-expiry-scan-period>, ms, default
	// 30000; 0 or -1 never scans) is how often queues are checked for
	// expired messages (a message is also expired when it would be
	// delivered).
	MessageExpiryScanPeriod time.Duration

	// HA is the high-availability policy (<ha-policy>).
	HA HA
}

// AnonymousAllowed reports whether clients may connect without a user, as
// far as the configuration alone tells (see LoginRequired).
func (c *Config) AnonymousAllowed() bool { return !c.LoginRequired() }

// Journal holds the journal-* settings of <core>.
type Journal struct {
	// Type is journal-type as written, upper case: ASYNCIO (default), NIO,
	// MAPPED (run as NIO) or DIRECT.
	Type string
	// Backend is the aio backend journal-type selects.
	Backend aio.Kind
	// FileSize (journal-file-size, default 10 MiB) is the segment size.
	FileSize int64
	// MinFiles (journal-min-files, default 2) segments are preallocated.
	MinFiles int
	// PoolFiles (journal-pool-files, default -1 = no limit) caps recycled
	// segments.
	PoolFiles int
	// BufferTimeout (journal-buffer-timeout, ns): 0 (Tandem's default) is
	// adaptive group commit; a value > 0 caps the extra wait for a batch.
	BufferTimeout time.Duration
	// BufferSize (journal-buffer-size, default 490 KiB) is the largest batch.
	BufferSize int
	// MaxIO (journal-max-io) is the number of writes in flight: default 4096
	// for ASYNCIO, 1 otherwise.
	MaxIO int
	// Datasync (journal-datasync, default true): false skips fdatasync
	// (unsafe; for tests only).
	Datasync bool
	// SyncTransactional and SyncNonTransactional (default true) make
	// commits and non-transactional durable sends wait for the disk.
	SyncTransactional    bool
	SyncNonTransactional bool
	// CompactPercentage (default 30) and CompactMinFiles (default 10)
	// trigger compaction.
	CompactPercentage int
	CompactMinFiles   int
}

// Directories are the data directories, absolute or relative to the
// current directory once resolved.
type Directories struct {
	// Journal (journal-directory, default data/journal).
	Journal string
	// Bindings (bindings-directory, default data/bindings).
	Bindings string
	// Paging (paging-directory, default data/paging).
	Paging string
	// LargeMessages (large-messages-directory, default data/large-messages).
	LargeMessages string
	// NodeManagerLock (node-manager-lock-directory, default: the journal
	// directory) holds server.lock and the lock files.
	NodeManagerLock string

	set dirSet // which ones the file sets
}

type dirSet struct{ journal, bindings, paging, large, lock bool }

// DatabaseStore is <store><database-store>: journals and the node-manager
// lease in PostgreSQL.
type DatabaseStore struct {
	// URL is jdbc-connection-url as written (jdbc:postgresql://...).
	URL string
	// DriverClassName is jdbc-driver-class-name (org.postgresql.Driver).
	DriverClassName string
	// User and Password are jdbc-user and jdbc-password, if set.
	User     string
	Password string
	// Table names (Artemis's defaults: MESSAGES, BINDINGS, LARGE_MESSAGES,
	// PAGE_STORE, NODE_MANAGER_STORE).
	MessageTable          string
	BindingsTable         string
	LargeMessageTable     string
	PageStoreTable        string
	NodeManagerStoreTable string
	// LockExpiration (jdbc-lock-expiration, default 20 s) is the lease length.
	LockExpiration time.Duration
	// LockRenewPeriod (jdbc-lock-renew-period, default 4 s as in Artemis's
	// code; its docs say 2 s).
	LockRenewPeriod time.Duration
	// NetworkTimeout (jdbc-network-timeout, default 20 s).
	NetworkTimeout time.Duration
	// LockAcquisitionTimeout (jdbc-lock-acquisition-timeout, default -1 =
	// wait forever).
	LockAcquisitionTimeout time.Duration
	// AllowedTimeDiff (jdbc-allowed-time-diff, default 250 ms).
	AllowedTimeDiff time.Duration
	// JournalSyncPeriod (jdbc-journal-sync-period, default 5 ms) is accepted;
	// Tandem batches adaptively.
	JournalSyncPeriod time.Duration
}

// Acceptor is a listener: <acceptor name="...">URL</acceptor>.
type Acceptor struct {
	Name string
	// URL as written, e.g. tcp://0.0.0.0:61616?protocols=CORE.
	URL    string
	Scheme string
	Host   string
	Port   int
	// Params are the URL's parameters (separated by ';' or '&').
	Params map[string]string
	Line   int

	// Limits an acceptor's URL parameters set (connectors: unused).
	Limits AcceptorLimits
}

// AcceptorLimits are the acceptor URL parameters Tandem implements; zero
// values mean the defaults (docs/limits.md).
type AcceptorLimits struct {
	// ConnectionsAllowed (Artemis's connectionsAllowed; -1 or 0 = no limit
	// of the acceptor's own).
	ConnectionsAllowed int
	// HighWaterMark and LowWaterMark (Artemis's writeBufferHighWaterMark
	// and writeBufferLowWaterMark, bytes; defaults 128 KiB and 32 KiB).
	HighWaterMark, LowWaterMark int
	// WriteTimeout (Tandem's writeTimeout, ms; default 30 s; -1 = never).
	WriteTimeout time.Duration
}

// Address is host:port.
func (a Acceptor) Address() string { return joinHostPort(a.Host, a.Port) }

// Connector is an address to reach a broker: <connector name="...">URL</connector>.
// In-VM connectors (Scheme "vm") are kept so references to them resolve;
// in-VM acceptors are dropped (with a warning).
type Connector = Acceptor

// ClusterConnection is <cluster-connection name="...">.
type ClusterConnection struct {
	Name    string
	Address string
	// ConnectorRef names the connector this node announces.
	ConnectorRef string
	// StaticConnectors name the connectors of the other nodes.
	StaticConnectors []string
	// DiscoveryGroupRef names a discovery group (instead of static ones).
	DiscoveryGroupRef string
	// MessageLoadBalancing is OFF, STRICT, ON_DEMAND (default) or
	// OFF_WITH_REDISTRIBUTION.
	MessageLoadBalancing string
	MaxHops              int           // default 1
	RetryInterval        time.Duration // default 500 ms
	RetryMultiplier      float64       // default 1.0
	MaxRetryInterval     time.Duration // default 2000 ms
	ReconnectAttempts    int           // default -1
	InitialConnect       int           // initial-connect-attempts, default -1
	CallTimeout          time.Duration // default 30 s
	CheckPeriod          time.Duration // default 30 s
	ConnectionTTL        time.Duration // default 60 s
	DuplicateDetection   bool          // use-duplicate-detection, default true
	Line                 int
}

// BroadcastGroup is <broadcast-group name="...">.
type BroadcastGroup struct {
	Name          string
	GroupAddress  string
	GroupPort     int
	BroadcastPer  time.Duration // broadcast-period, default 2000 ms
	ConnectorRefs []string
	Line          int
}

// DiscoveryGroup is <discovery-group name="...">.
type DiscoveryGroup struct {
	Name           string
	GroupAddress   string
	GroupPort      int
	RefreshTimeout time.Duration // default 10 s
	Line           int
}

// User is one of Tandem's users: <user name="..." password="..." roles="a,b"/>.
type User struct {
	Name     string
	Password string
	Roles    []string
}

// Warning is something the broker ignores or repairs; it does not stop it.
type Warning struct {
	File string
	Line int
	Msg  string
}

// String renders "FILE:LINE: warning: message".
func (w Warning) String() string {
	return fmt.Sprintf("%s:%d: warning: %s", w.File, w.Line, w.Msg)
}

// Error is a configuration error at a line of the file.
type Error struct {
	File string
	Line int
	Msg  string
}

// Error renders "FILE:LINE: message".
func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }
