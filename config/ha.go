package config

import "time"

// Policy is an HA policy, named as /status and config check report it.
type Policy string

// HA policies.
const (
	PolicyNone        Policy = "none"
	PolicySharedStore Policy = "shared-store"
	PolicyReplication Policy = "replication"
	PolicyLiveOnly    Policy = "live-only"
	PolicyColocated   Policy = "colocated"
)

// Role is the role a broker starts in.
type Role string

// Roles. Artemis's master/live map to primary, slave to backup.
const (
	RolePrimary Role = "primary"
	RoleBackup  Role = "backup"
)

// Coordinator is what decides which broker of a group is active.
type Coordinator string

// Coordinators.
const (
	// CoordFileLock: shared store on a file system (server.lock).
	CoordFileLock Coordinator = "file-lock"
	// CoordJDBCLease: shared store in a database (node-manager lease row).
	CoordJDBCLease Coordinator = "jdbc-lease"
	// CoordZooKeeper: replication with a <manager> (lock + activation sequence).
	CoordZooKeeper Coordinator = "zookeeper"
	// CoordQuorum: replication without a manager (embedded quorum vote).
	CoordQuorum Coordinator = "quorum"
	// CoordNone: no HA, or live-only.
	CoordNone Coordinator = "none"
)

// HA is the <ha-policy> configuration. Fields that do not apply to the
// policy and role keep their defaults and are not shown by config check.
type HA struct {
	Policy      Policy
	Role        Role
	Coordinator Coordinator
	// Element is the policy as written, e.g. "replication/master".
	Element string
	// Line is where <ha-policy> starts (0 without one).
	Line int

	// GroupName (group-name): a backup pairs only with a primary of the
	// same group ("" = any).
	GroupName string
	// ClusterName (cluster-name) picks the cluster connection replication uses.
	ClusterName string

	// FailoverOnShutdown (failover-on-shutdown, default false): a clean stop
	// of the primary lets the backup take over.
	FailoverOnShutdown bool
	// WaitForActivation (wait-for-activation, shared-store primary, default
	// true): start() waits until the primary is active.
	WaitForActivation bool
	// AllowFailback (allow-failback, default true): an active backup stops
	// when its primary returns.
	AllowFailback bool
	// RestartBackup (restart-backup): Tandem's default is true (Artemis's
	// code agrees; its XSD and docs say false).
	RestartBackup bool
	// ScaleDown is the scale-down target of a live-only broker or a backup
	// that scales down instead of activating; nil = none.
	ScaleDown *ScaleDown

	// CheckForActiveServer (check-for-active-server, formerly
	// check-for-live-server, default false): a restarting quorum primary
	// looks for an active server with its node ID and fails back from it.
	CheckForActiveServer bool
	// InitialReplicationSyncTimeout (default 30 s) bounds how long journal
	// operations block at the end of the initial synchronisation.
	InitialReplicationSyncTimeout time.Duration
	// RetryReplicationWait (retry-replication-wait, default 2 s).
	RetryReplicationWait time.Duration
	// ReplicationAck (replication-ack, Tandem's; default durable): when a
	// replica acknowledges what it received: durable, after its fdatasync,
	// or received, once written to its files (Artemis's level, which a
	// power loss of both brokers can undo).
	ReplicationAck string
	// MaxSavedReplicatedJournalsSize (default 2) old replicas are kept.
	MaxSavedReplicatedJournalsSize int
	// VoteOnReplicationFailure (default false): the primary votes when it
	// loses its backup and stops without a majority.
	VoteOnReplicationFailure bool
	// QuorumSize (default -1 = the largest cluster seen).
	QuorumSize int
	// VoteRetries (default 12) and VoteRetryWait (default 5 s) tune the
	// backup's vote; QuorumVoteWait (default 30 s) is one vote's wait.
	VoteRetries    int
	VoteRetryWait  time.Duration
	QuorumVoteWait time.Duration
	// CoordinationID (coordination-id) replaces the node ID as the
	// ZooKeeper key; brokers that share it compete for the same role.
	CoordinationID string
	// Manager is the ZooKeeper coordination (<manager>); nil for quorum.
	Manager *Manager

	// Colocated is set when Policy is PolicyColocated.
	Colocated *Colocated
}

// Manager is <manager>: ZooKeeper coordination through Curator in Artemis,
// github.com/go-zookeeper/zk in Tandem.
type Manager struct {
	// ClassName as written (optional; only the Curator managers are accepted).
	ClassName string
	// ConnectString (connect-string) lists the ZooKeeper nodes host:port,...
	ConnectString string
	// Namespace (namespace) prefixes every znode; a pair must share it.
	Namespace string
	// SessionTimeout (session-ms, default 18 s): a primary that loses the
	// majority for this long stops.
	SessionTimeout time.Duration
	// SessionPercent (session-percent, default 33).
	SessionPercent int
	// ConnectionTimeout (connection-ms, default 8 s).
	ConnectionTimeout time.Duration
	// Retries (retries, default 1) and RetriesWait (retries-ms, default 1 s).
	Retries     int
	RetriesWait time.Duration
}

// ScaleDown is <scale-down>: where a stopping broker moves its messages.
type ScaleDown struct {
	// Enabled (enabled, default true): false takes part only as a target.
	Enabled bool
	// GroupName (group-name): scale down only to a broker of this group.
	GroupName string
	// DiscoveryGroup (discovery-group-ref discovery-group-name).
	DiscoveryGroup string
	// Connectors (connectors/connector-ref): the target brokers.
	Connectors []string
	// CommitInterval (commit-interval, default -1 = one transaction per
	// queue) messages per transaction.
	CommitInterval int

	line int
}

// Colocated is <colocated>: this primary asks another to host its backup and
// hosts backups of others.
type Colocated struct {
	// Store is PolicySharedStore or PolicyReplication.
	Store Policy
	// RequestBackup (request-backup, default false).
	RequestBackup bool
	// MaxBackups (max-backups, default 1; 0 = host none).
	MaxBackups int
	// BackupRequestRetries (backup-request-retries, default -1 = forever).
	BackupRequestRetries int
	// BackupRequestRetryInterval (default 5 s).
	BackupRequestRetryInterval time.Duration
	// BackupPortOffset (backup-port-offset, default 100).
	BackupPortOffset int
	// Excludes are connectors not shifted by the port offset.
	Excludes     []string
	excludesLine int
	// Primary is the nested <master>/<primary>, Backup the nested
	// <slave>/<backup> (options of the hosted backups).
	Primary HA
	Backup  HA
}
