package config

import (
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/tandemmq/tandem/aio"
)

// Defaults that are not Artemis's own.
const (
	// DefaultName is the node name when <name> is not set.
	DefaultName = "tandem"
	// DefaultAcceptorURL is the acceptor of a broker without configuration:
	// loopback only, because such a broker allows anonymous access.
	// `tandem create` writes tcp://0.0.0.0:61616 like `artemis create`.
	DefaultAcceptorURL = "tcp://127.0.0.1:61616"
	// DefaultManagementAddress is the management HTTP listener.
	DefaultManagementAddress = "127.0.0.1:8161"
	// DefaultConnectionsAllowed is <connections-allowed>'s default.
	DefaultConnectionsAllowed = 4096
	// DefaultConnectionTTLMax is <connection-ttl-max>'s default.
	DefaultConnectionTTLMax = 5 * time.Minute
	// DefaultDataDir is the data directory, relative to the instance directory.
	DefaultDataDir = "data"
	// CuratorManager and CuratorLockManager are the ZooKeeper manager class
	// names Artemis accepts (before and after its 2.31 rename).
	CuratorManager     = "org.apache.activemq.artemis.quorum.zookeeper.CuratorDistributedPrimitiveManager"
	CuratorLockManager = "org.apache.activemq.artemis.lockmanager.zookeeper.CuratorDistributedLockManager"
)

// Default is the configuration of a broker started without broker.xml: a
// single broker (no HA), file journal in ./data, acceptor
// tcp://127.0.0.1:61616, management on 127.0.0.1:8161, anonymous access.
func Default() *Config {
	c := &Config{
		Name:                    DefaultName,
		PersistenceEnabled:      true,
		Journal:                 defaultJournal(),
		ConnectionTTLOverride:   -time.Millisecond,
		ConnectionTTLMax:        DefaultConnectionTTLMax,
		ConnectionsAllowed:      DefaultConnectionsAllowed,
		IDCacheSize:             20000,
		PersistIDCache:          true,
		SecurityEnabled:         true,
		Security:                DefaultSecurity(),
		ClusterUser:             "ACTIVEMQ.CLUSTER.ADMIN.USER",
		ClusterPassword:         "CHANGE ME!!",
		ManagementAddress:       DefaultManagementAddress,
		AddressQueueScanPeriod:  DefaultAddressQueueScanPeriod,
		MaxQueues:               DefaultMaxQueues,
		MaxAddresses:            DefaultMaxQueues,
		GlobalMaxSize:           -1,
		MessageExpiryScanPeriod: DefaultMessageExpiryScanPeriod,
		HA:                      defaultHA(),
	}
	a, _ := parseURL(DefaultAcceptorURL)
	a.Name = "artemis"
	c.Acceptors = []Acceptor{a}
	c.resolveDirs()
	return c
}

func defaultJournal() Journal {
	return Journal{
		Type:                 "ASYNCIO",
		Backend:              aio.IOUring,
		FileSize:             10 << 20,
		MinFiles:             2,
		PoolFiles:            -1,
		BufferTimeout:        0,
		BufferSize:           501760,
		MaxIO:                4096,
		Datasync:             true,
		SyncTransactional:    true,
		SyncNonTransactional: true,
		CompactPercentage:    30,
		CompactMinFiles:      10,
	}
}

// defaultHA holds every HA option's default; the policy fills in the rest.
func defaultHA() HA {
	return HA{
		Policy:                         PolicyNone,
		Role:                           RolePrimary,
		Coordinator:                    CoordNone,
		WaitForActivation:              true,
		AllowFailback:                  true,
		RestartBackup:                  true,
		InitialReplicationSyncTimeout:  30 * time.Second,
		RetryReplicationWait:           2 * time.Second,
		MaxSavedReplicatedJournalsSize: 2,
		ReplicationAck:                 "durable",
		QuorumSize:                     -1,
		VoteRetries:                    12,
		VoteRetryWait:                  5 * time.Second,
		QuorumVoteWait:                 30 * time.Second,
	}
}

func defaultManager() *Manager {
	return &Manager{
		ClassName:         CuratorLockManager,
		SessionTimeout:    18 * time.Second,
		SessionPercent:    33,
		ConnectionTimeout: 8 * time.Second,
		Retries:           1,
		RetriesWait:       time.Second,
	}
}

func defaultScaleDown() *ScaleDown { return &ScaleDown{Enabled: true, CommitInterval: -1} }

func defaultColocated() *Colocated {
	return &Colocated{
		MaxBackups:                 1,
		BackupRequestRetries:       -1,
		BackupRequestRetryInterval: 5 * time.Second,
		BackupPortOffset:           100,
	}
}

func defaultDatabaseStore() *DatabaseStore {
	return &DatabaseStore{
		DriverClassName:        "org.postgresql.Driver",
		MessageTable:           "MESSAGES",
		BindingsTable:          "BINDINGS",
		LargeMessageTable:      "LARGE_MESSAGES",
		PageStoreTable:         "PAGE_STORE",
		NodeManagerStoreTable:  "NODE_MANAGER_STORE",
		LockExpiration:         20 * time.Second,
		LockRenewPeriod:        4 * time.Second,
		NetworkTimeout:         20 * time.Second,
		LockAcquisitionTimeout: -time.Millisecond,
		AllowedTimeDiff:        250 * time.Millisecond,
		JournalSyncPeriod:      5 * time.Millisecond,
	}
}

func defaultClusterConnection() ClusterConnection {
	return ClusterConnection{
		MessageLoadBalancing: "ON_DEMAND",
		MaxHops:              1,
		RetryInterval:        500 * time.Millisecond,
		RetryMultiplier:      1.0,
		MaxRetryInterval:     2000 * time.Millisecond,
		ReconnectAttempts:    -1,
		InitialConnect:       -1,
		CallTimeout:          30 * time.Second,
		CheckPeriod:          30 * time.Second,
		ConnectionTTL:        60 * time.Second,
		DuplicateDetection:   true,
	}
}

// resolveDirs fills unset directories with InstanceDir/data/... and makes
// relative ones relative to InstanceDir.
func (c *Config) resolveDirs() {
	d := &c.Dirs
	fill := func(p *string, set bool, def string) {
		if !set {
			*p = filepath.Join(c.InstanceDir, DefaultDataDir, def)
		} else if !filepath.IsAbs(*p) {
			*p = filepath.Join(c.InstanceDir, *p)
		}
	}
	fill(&d.Journal, d.set.journal, "journal")
	fill(&d.Bindings, d.set.bindings, "bindings")
	fill(&d.Paging, d.set.paging, "paging")
	fill(&d.LargeMessages, d.set.large, "large-messages")
	if d.set.lock {
		fill(&d.NodeManagerLock, true, "")
	} else {
		d.NodeManagerLock = d.Journal
	}
}

// ApplyDataDir points every directory the configuration does not set at
// dir (`tandem run --data DIR`): DIR/journal, DIR/bindings, DIR/paging,
// DIR/large-messages; the lock directory follows the journal directory
// unless node-manager-lock-directory is set. Paths set in the file win.
func (c *Config) ApplyDataDir(dir string) {
	d := &c.Dirs
	if !d.set.journal {
		d.Journal = filepath.Join(dir, "journal")
	}
	if !d.set.bindings {
		d.Bindings = filepath.Join(dir, "bindings")
	}
	if !d.set.paging {
		d.Paging = filepath.Join(dir, "paging")
	}
	if !d.set.large {
		d.LargeMessages = filepath.Join(dir, "large-messages")
	}
	if !d.set.lock {
		d.NodeManagerLock = d.Journal
	}
}

func joinHostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}
