package config

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"time"
)

// masked replaces passwords in the JSON view.
const masked = "****"

// JSON renders the effective configuration as `tandem config check` prints
// it: settings under their Artemis names (durations in the unit Artemis
// uses, sizes in bytes), facts Tandem derives in snake_case (journal_backend,
// instance_dir, anonymous_allowed), passwords masked. The "ha" object has
// policy, role, coordinator, group_name and every option of the policy and
// role under its Artemis name.
func (c *Config) JSON() ([]byte, error) {
	return json.MarshalIndent(c.view(), "", "  ")
}

type urlView struct {
	Name   string            `json:"name"`
	URL    string            `json:"url"`
	Scheme string            `json:"scheme"`
	Host   string            `json:"host"`
	Port   int               `json:"port"`
	Params map[string]string `json:"params,omitempty"`
}

type userView struct {
	Name  string   `json:"name"`
	Roles []string `json:"roles"`
}

type configView struct {
	File                     string            `json:"file,omitempty"`
	InstanceDir              string            `json:"instance_dir"`
	Name                     string            `json:"name"`
	PersistenceEnabled       bool              `json:"persistence-enabled"`
	JournalType              string            `json:"journal-type"`
	JournalBackend           string            `json:"journal_backend"`
	JournalDirectory         string            `json:"journal-directory"`
	BindingsDirectory        string            `json:"bindings-directory"`
	PagingDirectory          string            `json:"paging-directory"`
	LargeMessagesDirectory   string            `json:"large-messages-directory"`
	NodeManagerLockDirectory string            `json:"node-manager-lock-directory"`
	JournalFileSize          int64             `json:"journal-file-size"`
	JournalMinFiles          int               `json:"journal-min-files"`
	JournalPoolFiles         int               `json:"journal-pool-files"`
	JournalBufferTimeout     int64             `json:"journal-buffer-timeout"`
	JournalBufferMode        string            `json:"journal_buffer_mode"`
	JournalBufferSize        int               `json:"journal-buffer-size"`
	JournalMaxIO             int               `json:"journal-max-io"`
	JournalDatasync          bool              `json:"journal-datasync"`
	JournalSyncTx            bool              `json:"journal-sync-transactional"`
	JournalSyncNonTx         bool              `json:"journal-sync-non-transactional"`
	JournalCompactPercentage int               `json:"journal-compact-percentage"`
	JournalCompactMinFiles   int               `json:"journal-compact-min-files"`
	Store                    map[string]any    `json:"store"`
	Acceptors                []urlView         `json:"acceptors"`
	Connectors               []urlView         `json:"connectors"`
	ClusterConnections       []map[string]any  `json:"cluster-connections"`
	BroadcastGroups          []map[string]any  `json:"broadcast-groups"`
	DiscoveryGroups          []map[string]any  `json:"discovery-groups"`
	ConnectionTTLOverride    int64             `json:"connection-ttl-override"`
	ConnectionTTLMax         int64             `json:"connection-ttl-max"`
	ConnectionsAllowed       int               `json:"connections-allowed"`
	PprofEnabled             string            `json:"pprof-enabled"`
	IDCacheSize              int               `json:"id-cache-size"`
	PersistIDCache           bool              `json:"persist-id-cache"`
	SecurityEnabled          bool              `json:"security-enabled"`
	SecurityInvalidation     int64             `json:"security-invalidation-interval"`
	SecuritySettings         []map[string]any  `json:"security-settings"`
	Security                 map[string]any    `json:"security"`
	ManagementSSL            map[string]string `json:"management-http-ssl,omitempty"`
	AnonymousAllowed         bool              `json:"anonymous_allowed"`
	ClusterUser              string            `json:"cluster-user"`
	ClusterPassword          string            `json:"cluster-password"`
	Users                    []userView        `json:"users"`
	ManagementAddress        string            `json:"management-http-address"`
	AddressSettings          []map[string]any  `json:"address-settings"`
	AddressQueueScanPeriod   int64             `json:"address-queue-scan-period"`
	MaxQueues                int               `json:"max-queues"`
	MaxAddresses             int               `json:"max-addresses"`
	Addresses                []map[string]any  `json:"addresses"`
	GlobalMaxSize            int64             `json:"global-max-size"`
	MessageExpiryScanPeriod  int64             `json:"message-expiry-scan-period"`
	HA                       map[string]any    `json:"ha"`
}

// ms renders a duration in milliseconds; a negative one (none, forever) as -1.
func ms(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return d.Milliseconds()
}

func (c *Config) view() configView {
	j := c.Journal
	v := configView{
		File: c.File, InstanceDir: c.InstanceDir, Name: c.Name,
		PersistenceEnabled: c.PersistenceEnabled,
		JournalType:        j.Type, JournalBackend: j.Backend.String(),
		JournalDirectory: c.Dirs.Journal, BindingsDirectory: c.Dirs.Bindings,
		PagingDirectory: c.Dirs.Paging, LargeMessagesDirectory: c.Dirs.LargeMessages,
		NodeManagerLockDirectory: c.Dirs.NodeManagerLock,
		JournalFileSize:          j.FileSize, JournalMinFiles: j.MinFiles, JournalPoolFiles: j.PoolFiles,
		JournalBufferTimeout: j.BufferTimeout.Nanoseconds(), JournalBufferMode: "adaptive",
		JournalBufferSize: j.BufferSize, JournalMaxIO: j.MaxIO, JournalDatasync: j.Datasync,
		JournalSyncTx: j.SyncTransactional, JournalSyncNonTx: j.SyncNonTransactional,
		JournalCompactPercentage: j.CompactPercentage, JournalCompactMinFiles: j.CompactMinFiles,
		Store:                 storeView(c.Store),
		Acceptors:             urlViews(c.Acceptors),
		Connectors:            urlViews(c.Connectors),
		ClusterConnections:    []map[string]any{},
		BroadcastGroups:       []map[string]any{},
		DiscoveryGroups:       []map[string]any{},
		ConnectionTTLOverride: ms(c.ConnectionTTLOverride),
		ConnectionTTLMax:      ms(c.ConnectionTTLMax),
		ConnectionsAllowed:    c.ConnectionsAllowed,
		PprofEnabled:          "when the management address is loopback",
		IDCacheSize:           c.IDCacheSize, PersistIDCache: c.PersistIDCache,
		SecurityEnabled: c.SecurityEnabled, AnonymousAllowed: c.AnonymousAllowed(),
		ClusterUser: c.ClusterUser, ClusterPassword: masked,
		Users:                  []userView{},
		ManagementAddress:      c.ManagementAddress,
		ManagementSSL:          maskParams(c.Security.ManagementSSL),
		SecurityInvalidation:   ms(c.Security.InvalidationInterval),
		SecuritySettings:       securitySettingsView(c.Security.Settings),
		Security:               securityView(c),
		AddressSettings:        addressSettingsView(c.AddressSettings),
		AddressQueueScanPeriod: ms(c.AddressQueueScanPeriod),
		MaxQueues:              c.MaxQueues, MaxAddresses: c.MaxAddresses,
		Addresses: addressesView(c.Addresses), GlobalMaxSize: c.GlobalMaxSize,
		MessageExpiryScanPeriod: ms(c.MessageExpiryScanPeriod),
		HA:                      haView(&c.HA, c.Store),
	}
	if c.PprofEnabled != nil {
		v.PprofEnabled = fmt.Sprint(*c.PprofEnabled)
	}
	if j.BufferTimeout > 0 {
		v.JournalBufferMode = "adaptive, capped by journal-buffer-timeout"
	}
	for _, cc := range c.ClusterConnections {
		m := map[string]any{
			"name": cc.Name, "address": cc.Address, "connector-ref": cc.ConnectorRef,
			"message-load-balancing": cc.MessageLoadBalancing, "max-hops": cc.MaxHops,
			"retry-interval": ms(cc.RetryInterval), "retry-interval-multiplier": cc.RetryMultiplier,
			"max-retry-interval": ms(cc.MaxRetryInterval), "reconnect-attempts": cc.ReconnectAttempts,
			"initial-connect-attempts": cc.InitialConnect, "call-timeout": ms(cc.CallTimeout),
			"check-period": ms(cc.CheckPeriod), "connection-ttl": ms(cc.ConnectionTTL),
			"use-duplicate-detection": cc.DuplicateDetection,
		}
		if cc.DiscoveryGroupRef != "" {
			m["discovery-group-ref"] = cc.DiscoveryGroupRef
		} else {
			m["static-connectors"] = orEmpty(cc.StaticConnectors)
		}
		v.ClusterConnections = append(v.ClusterConnections, m)
	}
	for _, g := range c.BroadcastGroups {
		v.BroadcastGroups = append(v.BroadcastGroups, map[string]any{"name": g.Name,
			"group-address": g.GroupAddress, "group-port": g.GroupPort,
			"broadcast-period": ms(g.BroadcastPer), "connector-ref": orEmpty(g.ConnectorRefs)})
	}
	for _, g := range c.DiscoveryGroups {
		v.DiscoveryGroups = append(v.DiscoveryGroups, map[string]any{"name": g.Name,
			"group-address": g.GroupAddress, "group-port": g.GroupPort,
			"refresh-timeout": ms(g.RefreshTimeout)})
	}
	for _, u := range c.Users {
		v.Users = append(v.Users, userView{Name: u.Name, Roles: orEmpty(u.Roles)})
	}
	return v
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func urlViews(as []Acceptor) []urlView {
	out := []urlView{}
	for _, a := range as {
		out = append(out, urlView{Name: a.Name, URL: maskURL(a.URL), Scheme: a.Scheme, Host: a.Host, Port: a.Port, Params: maskParams(a.Params)})
	}
	return out
}

func storeView(s *DatabaseStore) map[string]any {
	if s == nil {
		return map[string]any{"type": "file"}
	}
	return map[string]any{
		"type":                          "jdbc",
		"jdbc-connection-url":           maskURL(s.URL),
		"jdbc-driver-class-name":        s.DriverClassName,
		"jdbc-user":                     s.User,
		"message-table-name":            s.MessageTable,
		"bindings-table-name":           s.BindingsTable,
		"large-message-table-name":      s.LargeMessageTable,
		"page-store-table-name":         s.PageStoreTable,
		"node-manager-store-table-name": s.NodeManagerStoreTable,
		"jdbc-lock-expiration":          ms(s.LockExpiration),
		"jdbc-lock-renew-period":        ms(s.LockRenewPeriod),
		"jdbc-network-timeout":          ms(s.NetworkTimeout),
		"jdbc-lock-acquisition-timeout": ms(s.LockAcquisitionTimeout),
		"jdbc-allowed-time-diff":        ms(s.AllowedTimeDiff),
		"jdbc-journal-sync-period":      ms(s.JournalSyncPeriod),
	}
}

// maskURL hides a password in a URL's user info or query.
func maskURL(raw string) string {
	raw = queryPasswordRE.ReplaceAllString(raw, "${1}"+masked)
	return userinfoPasswordRE.ReplaceAllString(raw, "${1}"+masked+"@")
}

// queryPasswordRE matches "password=VALUE" in a query, userinfoPasswordRE
// "user:VALUE@" after the scheme.
var (
	queryPasswordRE    = regexp.MustCompile(`([?&;](?:password|keyStorePassword|trustStorePassword)=)[^&;]*`)
	userinfoPasswordRE = regexp.MustCompile(`(//[^/:@?]*:)[^@/?]*@`)
)

// haKindOf maps a policy and role to the option set shown for it.
func haKindOf(h *HA) (haKind, bool) {
	switch h.Policy {
	case PolicySharedStore:
		if h.Role == RoleBackup {
			return ssBackup, true
		}
		return ssPrimary, true
	case PolicyReplication:
		switch {
		case h.Role == RolePrimary && h.Manager != nil:
			return replPrimaryZK, true
		case h.Role == RolePrimary:
			return replPrimaryQuorum, true
		case h.Manager != nil:
			return replBackupZK, true
		}
		return replBackupQuorum, true
	case PolicyLiveOnly:
		return liveOnly, true
	}
	return 0, false
}

func haView(h *HA, store *DatabaseStore) map[string]any {
	m := map[string]any{
		"policy":      string(h.Policy),
		"role":        string(h.Role),
		"coordinator": string(h.Coordinator),
		"group_name":  h.GroupName,
		"element":     h.Element,
	}
	if kind, ok := haKindOf(h); ok {
		haOptionsView(m, h, kind)
	}
	if col := h.Colocated; col != nil {
		m["colocated_store"] = string(col.Store)
		m["request-backup"] = col.RequestBackup
		m["max-backups"] = col.MaxBackups
		m["backup-request-retries"] = col.BackupRequestRetries
		m["backup-request-retry-interval"] = ms(col.BackupRequestRetryInterval)
		m["backup-port-offset"] = col.BackupPortOffset
		m["excludes"] = orEmpty(col.Excludes)
		for name, sub := range map[string]*HA{"primary": &col.Primary, "backup": &col.Backup} {
			sm := map[string]any{}
			if kind, ok := haKindOf(sub); ok {
				haOptionsView(sm, sub, kind)
			}
			m[name] = sm
		}
	}
	if h.Coordinator == CoordJDBCLease && store != nil {
		m["jdbc-lock-expiration"] = ms(store.LockExpiration)
		m["jdbc-lock-renew-period"] = ms(store.LockRenewPeriod)
		m["node-manager-store-table-name"] = store.NodeManagerStoreTable
	}
	return m
}

// haOptionsView adds every option of kind with its effective value.
func haOptionsView(m map[string]any, h *HA, kind haKind) {
	names := make([]string, 0, len(haAllowed[kind]))
	for n := range haAllowed[kind] {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		switch n {
		case "failback-delay": // deprecated, no effect
		case "failover-on-shutdown":
			m[n] = h.FailoverOnShutdown
		case "wait-for-activation":
			m[n] = h.WaitForActivation
		case "allow-failback":
			m[n] = h.AllowFailback
		case "restart-backup":
			m[n] = h.RestartBackup
		case "scale-down":
			m[n] = scaleDownView(h.ScaleDown)
		case "group-name":
			m[n] = h.GroupName
		case "cluster-name":
			m[n] = h.ClusterName
		case "check-for-live-server", "check-for-active-server":
			m[n] = h.CheckForActiveServer
		case "initial-replication-sync-timeout":
			m[n] = ms(h.InitialReplicationSyncTimeout)
		case "vote-on-replication-failure":
			m[n] = h.VoteOnReplicationFailure
		case "quorum-size":
			m[n] = h.QuorumSize
		case "vote-retries":
			m[n] = h.VoteRetries
		case "vote-retry-wait":
			m[n] = ms(h.VoteRetryWait)
		case "quorum-vote-wait":
			m[n] = int64(h.QuorumVoteWait / time.Second)
		case "retry-replication-wait":
			m[n] = ms(h.RetryReplicationWait)
		case "max-saved-replicated-journals-size":
			m[n] = h.MaxSavedReplicatedJournalsSize
		case "replication-ack":
			m[n] = h.ReplicationAck
		case "coordination-id":
			m[n] = h.CoordinationID
		case "manager":
			m[n] = managerView(h.Manager)
		}
	}
}

func scaleDownView(sd *ScaleDown) any {
	if sd == nil {
		return nil
	}
	m := map[string]any{
		"enabled":         sd.Enabled,
		"group-name":      sd.GroupName,
		"connectors":      orEmpty(sd.Connectors),
		"commit-interval": sd.CommitInterval,
	}
	if sd.DiscoveryGroup != "" {
		m["discovery-group-ref"] = sd.DiscoveryGroup
	}
	return m
}

func managerView(mg *Manager) any {
	if mg == nil {
		return nil
	}
	return map[string]any{
		"class-name": mg.ClassName,
		"properties": map[string]any{
			"connect-string":  mg.ConnectString,
			"namespace":       mg.Namespace,
			"session-ms":      ms(mg.SessionTimeout),
			"session-percent": mg.SessionPercent,
			"connection-ms":   ms(mg.ConnectionTimeout),
			"retries":         mg.Retries,
			"retries-ms":      ms(mg.RetriesWait),
		},
	}
}

// maskParams copies URL parameters with the stores' passwords masked.
func maskParams(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if k == "keyStorePassword" || k == "trustStorePassword" || k == "password" {
			v = masked
		}
		out[k] = v
	}
	return out
}

// securitySettingsView is <security-settings> as JSON: match and the roles
// of each permission type.
func securitySettingsView(ss SecuritySettings) []map[string]any {
	out := []map[string]any{}
	for _, s := range ss {
		perms := map[string][]string{}
		for k, v := range s.Roles {
			perms[k] = orEmpty(v)
		}
		out = append(out, map[string]any{"match": s.Match, "permissions": perms})
	}
	return out
}

// securityView is <security> (besides its users) as JSON.
func securityView(c *Config) map[string]any {
	s := c.Security
	m := map[string]any{"users-file": s.UsersFile, "anonymous-role": orEmpty(s.AnonymousRoles),
		"require-login": nil, "security-settings-configured": s.SettingsSet}
	if s.RequireLogin != nil {
		m["require-login"] = *s.RequireLogin
	}
	return m
}
