package jdbcstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// State is the shared-store state letter, as Artemis keeps it in
// server.lock and in its NODE_MANAGER_STORE state row.
type State byte

// Shared-store states.
const (
	StateActive         State = 'L' // a primary (or an activated backup) is live
	StateFailingBack    State = 'F' // a restarted primary wants its place back
	StatePaused         State = 'P' // stopped cleanly without failover
	StateNotStarted     State = 'N' // nothing has run yet, or the store was reset
	StateFirstTimeStart State = '0'
)

func (s State) valid() bool {
	switch s {
	case StateActive, StateFailingBack, StatePaused, StateNotStarted, StateFirstTimeStart:
		return true
	}
	return false
}

// LockName names a lease row of a group.
type LockName string

// The group's leases: the primary lock (whose epoch fences the journals)
// and the backup lock (one waiting backup at a time).
const (
	LockPrimary LockName = "primary"
	LockBackup  LockName = "backup"
	rowState    LockName = "state"
)

// Default lease timing (Artemis's jdbc-lock-expiration and
// jdbc-lock-renew-period).
const (
	DefaultLockExpiration  = 20 * time.Second
	DefaultLockRenewPeriod = 4 * time.Second
)

// NodeManagerOptions configure the node-manager table.
type NodeManagerOptions struct {
	// URL as in Options.
	URL string
	// Table is node-manager-store-table-name; "" means NODE_MANAGER_STORE.
	Table string
	// Group is the shared-store group; "" means "default".
	Group string
	// LockExpiration is how long a lease lasts past its last renewal, by
	// the database's clock; 0 means 20 s.
	LockExpiration time.Duration
	// RenewPeriod is how often a held lease is renewed; 0 means 4 s. It
	// must be shorter than LockExpiration.
	RenewPeriod time.Duration
	// AllowedTimeDiff is the clock difference with the database above
	// which acquiring logs a warning (jdbc-allowed-time-diff); 0 means
	// 250 ms. Leases never use the local clock's time of day.
	AllowedTimeDiff time.Duration
	// StatementTimeout as in Options; 0 means the renew period.
	StatementTimeout time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// NodeManager reads and writes a group's rows in the node-manager table:
// the state row (state letter, node ID) and the lease rows. It holds one
// connection of its own, so renewals never queue behind journal batches.
type NodeManager struct {
	opts  NodeManagerOptions
	table string
	mu    sync.Mutex // serialises use of conn
	conn  *pgx.Conn
}

// ErrLeaseLost means the lease is no longer this holder's: another node
// acquired it, or renewals failed until less than one renew period of it
// was left.
var ErrLeaseLost = errors.New("jdbcstore: lease lost")

func nodeManagerDDL(table string) []string {
	t := ident(table)
	return []string{
		`CREATE TABLE ` + t + ` (
			group_name text NOT NULL,
			lock_name text NOT NULL,
			holder text,
			expiry timestamptz,
			epoch bigint NOT NULL DEFAULT 0,
			state char(1) NOT NULL DEFAULT 'N',
			node_id text,
			PRIMARY KEY (group_name, lock_name))`,
		`CREATE FUNCTION ` + fenceFunc(table) + `(g text, e bigint) RETURNS void LANGUAGE plpgsql AS $fn$
		DECLARE cur bigint;
		BEGIN
			SELECT epoch INTO cur FROM ` + t + ` WHERE group_name = g AND lock_name = 'primary' FOR KEY SHARE;
			IF cur IS DISTINCT FROM e THEN
				RAISE EXCEPTION USING ERRCODE = '` + fencedCode + `',
					MESSAGE = format('group %s is at epoch %s, this writer has epoch %s', g, coalesce(cur::text, 'none'), e);
			END IF;
		END $fn$`,
	}
}

// OpenNodeManager connects, creates the table (and its fence function)
// when missing, and makes sure the group's rows exist.
func OpenNodeManager(ctx context.Context, opts NodeManagerOptions) (*NodeManager, error) {
	o := opts
	if o.Table == "" {
		o.Table = DefaultNodeManagerTable
	}
	if o.Group == "" {
		o.Group = "default"
	}
	if o.LockExpiration == 0 {
		o.LockExpiration = DefaultLockExpiration
	}
	if o.RenewPeriod == 0 {
		o.RenewPeriod = DefaultLockRenewPeriod
	}
	if o.RenewPeriod >= o.LockExpiration {
		return nil, fmt.Errorf("jdbcstore: jdbc-lock-renew-period %v must be shorter than jdbc-lock-expiration %v", o.RenewPeriod, o.LockExpiration)
	}
	if o.StatementTimeout == 0 {
		o.StatementTimeout = o.RenewPeriod
	}
	if o.AllowedTimeDiff == 0 {
		o.AllowedTimeDiff = 250 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	table, err := tableName(o.Table)
	if err != nil {
		return nil, err
	}
	conn, err := connect(ctx, o.URL, o.StatementTimeout, o.Logger)
	if err != nil {
		return nil, err
	}
	if _, err := ensureTable(ctx, conn, table, kindNodeManager, nodeManagerDDL(table)); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	_, err = conn.Exec(ctx, "INSERT INTO "+ident(table)+" (group_name, lock_name) VALUES ($1, 'primary'), ($1, 'backup'), ($1, 'state') ON CONFLICT DO NOTHING", o.Group)
	if err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("jdbcstore: %s: create rows of group %q: %w", table, o.Group, err)
	}
	return &NodeManager{opts: o, table: table, conn: conn}, nil
}

// connLocked returns the connection, reconnecting first when the last one
// broke (a renewal must survive a database restart while the lease lasts).
// A failed reconnect returns the closed connection: its calls then fail.
// m.mu must be held.
func (m *NodeManager) connLocked(ctx context.Context) *pgx.Conn {
	if !m.conn.IsClosed() {
		return m.conn
	}
	c, err := connect(ctx, m.opts.URL, m.opts.StatementTimeout, nil)
	if err != nil {
		m.opts.Logger.Warn("jdbcstore: node manager reconnect failed", "err", err)
		return m.conn
	}
	m.conn = c
	return c
}

// Table returns the node-manager table's (folded) name, for Fence.Table.
func (m *NodeManager) Table() string { return m.table }

// Group returns the group.
func (m *NodeManager) Group() string { return m.opts.Group }

// Close closes the connection. Leases are not released: call Release.
func (m *NodeManager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.conn.Close(context.Background())
}

// ReadState returns the group's state letter and node ID ("" when unset).
func (m *NodeManager) ReadState(ctx context.Context) (State, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var s string
	var node *string
	err := m.connLocked(ctx).QueryRow(ctx, "SELECT state, node_id FROM "+ident(m.table)+" WHERE group_name = $1 AND lock_name = $2", m.opts.Group, string(rowState)).Scan(&s, &node)
	if err != nil {
		return 0, "", fmt.Errorf("jdbcstore: %s: read state of group %q: %w", m.table, m.opts.Group, err)
	}
	st := StateNotStarted
	if len(s) == 1 && State(s[0]).valid() {
		st = State(s[0])
	}
	id := ""
	if node != nil {
		id = *node
	}
	return st, id, nil
}

// WriteState sets the group's state letter.
func (m *NodeManager) WriteState(ctx context.Context, s State) error {
	if !s.valid() {
		return fmt.Errorf("jdbcstore: state %q is not a shared-store state", s)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, err := m.connLocked(ctx).Exec(ctx, "UPDATE "+ident(m.table)+" SET state = $3 WHERE group_name = $1 AND lock_name = $2", m.opts.Group, string(rowState), string(s))
	if err != nil {
		return fmt.Errorf("jdbcstore: %s: write state of group %q: %w", m.table, m.opts.Group, err)
	}
	return nil
}

// WriteStateAt sets the group's state letter only while the primary
// lease is still at epoch: a live writing its state at a stop after a
// successor took the lease (it was paused past its lease) would write
// over the successor's. The check locks the primary row FOR KEY SHARE in
// the same statement, as a journal batch's fence does, so a takeover
// (which locks it FOR UPDATE) is ordered before or after it, never in
// between. A superseded epoch wraps ErrLeaseLost.
func (m *NodeManager) WriteStateAt(ctx context.Context, s State, epoch uint64) error {
	if !s.valid() {
		return fmt.Errorf("jdbcstore: state %q is not a shared-store state", s)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t := ident(m.table)
	tag, err := m.connLocked(ctx).Exec(ctx, "UPDATE "+t+" SET state = $3 WHERE group_name = $1 AND lock_name = $2"+
		" AND EXISTS (SELECT 1 FROM "+t+" p WHERE p.group_name = $1 AND p.lock_name = $4 AND p.epoch = $5 FOR KEY SHARE)",
		m.opts.Group, string(rowState), string(s), string(LockPrimary), int64(epoch))
	if err != nil {
		return fmt.Errorf("jdbcstore: %s: write state of group %q: %w", m.table, m.opts.Group, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: state %c of group %q not written: the primary lease is no longer at epoch %d", ErrLeaseLost, s, m.opts.Group, epoch)
	}
	return nil
}

// EnsureNodeID stores candidate as the group's node ID unless one is set,
// and returns the stored one (the first broker of a pair names the node).
func (m *NodeManager) EnsureNodeID(ctx context.Context, candidate string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var id string
	err := m.connLocked(ctx).QueryRow(ctx, "UPDATE "+ident(m.table)+" SET node_id = coalesce(node_id, $3) WHERE group_name = $1 AND lock_name = $2 RETURNING node_id", m.opts.Group, string(rowState), candidate).Scan(&id)
	if err != nil {
		return "", fmt.Errorf("jdbcstore: %s: node ID of group %q: %w", m.table, m.opts.Group, err)
	}
	return id, nil
}

// Epoch returns the group's current fencing epoch (the primary row's).
func (m *NodeManager) Epoch(ctx context.Context) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var e int64
	err := m.connLocked(ctx).QueryRow(ctx, "SELECT epoch FROM "+ident(m.table)+" WHERE group_name = $1 AND lock_name = $2", m.opts.Group, string(LockPrimary)).Scan(&e)
	if err != nil {
		return 0, fmt.Errorf("jdbcstore: %s: epoch of group %q: %w", m.table, m.opts.Group, err)
	}
	return uint64(e), nil
}
