package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandemmq/tandem/aio"
)

func parseString(t *testing.T, doc string) (*Config, []Warning, error) {
	t.Helper()
	return Parse("broker.xml", strings.NewReader(doc))
}

// core wraps <core> content in a namespaced configuration, one element per
// line starting at line 3.
func core(lines ...string) string {
	return "<configuration xmlns=\"urn:activemq\">\n<core xmlns=\"urn:activemq:core\">\n" +
		strings.Join(lines, "\n") + "\n</core>\n</configuration>\n"
}

func TestCoreSettings(t *testing.T) {
	c, warns, err := parseString(t, core(
		`<name>broker-a</name>`,
		`<persistence-enabled>true</persistence-enabled>`,
		`<journal-type>NIO</journal-type>`,
		`<journal-directory>/mnt/san/journal</journal-directory>`,
		`<bindings-directory>data/b</bindings-directory>`,
		`<journal-file-size>10MiB</journal-file-size>`,
		`<journal-min-files>4</journal-min-files>`,
		`<journal-pool-files>20</journal-pool-files>`,
		`<journal-buffer-timeout>100000</journal-buffer-timeout>`,
		`<journal-buffer-size>1M</journal-buffer-size>`,
		`<journal-datasync>false</journal-datasync>`,
		`<journal-sync-transactional>false</journal-sync-transactional>`,
		`<journal-sync-non-transactional>false</journal-sync-non-transactional>`,
		`<journal-compact-percentage>50</journal-compact-percentage>`,
		`<journal-compact-min-files>3</journal-compact-min-files>`,
		`<node-manager-lock-directory>/mnt/san/lock</node-manager-lock-directory>`,
		`<connection-ttl-override>18000</connection-ttl-override>`,
		`<id-cache-size>5000</id-cache-size>`,
		`<persist-id-cache>false</persist-id-cache>`,
		`<security-enabled>true</security-enabled>`,
		`<cluster-user>cu</cluster-user>`,
		`<cluster-password>cp</cluster-password>`,
		`<management-http-address>0.0.0.0:8162</management-http-address>`,
		`<acceptors><acceptor name="artemis">tcp://0.0.0.0:61617?protocols=CORE;tcpSendBufferSize=1048576</acceptor></acceptors>`,
		`<connectors><connector name="me">tcp://10.0.0.1:61617</connector><connector name="peer">tcp://[::1]:61618</connector></connectors>`,
		`<cluster-connections><cluster-connection name="c"><connector-ref>me</connector-ref><message-load-balancing>STRICT</message-load-balancing><max-hops>2</max-hops><retry-interval>750</retry-interval><static-connectors><connector-ref>peer</connector-ref></static-connectors></cluster-connection></cluster-connections>`,
		`<security><users><user name="admin" password="pw" roles="admin, amq"/><user name="app" password="x"/></users></security>`,
	))
	if err != nil {
		t.Fatal(err)
	}
	j := c.Journal
	eq(t, "name", c.Name, "broker-a")
	eq(t, "journal-type", j.Type, "NIO")
	eq(t, "backend", j.Backend, aio.NIO)
	eq(t, "journal-directory", c.Dirs.Journal, "/mnt/san/journal")
	eq(t, "bindings-directory", c.Dirs.Bindings, "data/b")
	eq(t, "paging-directory", c.Dirs.Paging, filepath.Join("data", "paging"))
	eq(t, "lock dir", c.Dirs.NodeManagerLock, "/mnt/san/lock")
	eq(t, "journal-file-size", j.FileSize, int64(10<<20))
	eq(t, "journal-min-files", j.MinFiles, 4)
	eq(t, "journal-pool-files", j.PoolFiles, 20)
	eq(t, "journal-buffer-timeout", j.BufferTimeout, 100*time.Microsecond)
	eq(t, "journal-buffer-size", j.BufferSize, 1<<20)
	eq(t, "journal-max-io (NIO default)", j.MaxIO, 1)
	eq(t, "journal-datasync", j.Datasync, false)
	eq(t, "journal-sync-transactional", j.SyncTransactional, false)
	eq(t, "journal-sync-non-transactional", j.SyncNonTransactional, false)
	eq(t, "journal-compact-percentage", j.CompactPercentage, 50)
	eq(t, "journal-compact-min-files", j.CompactMinFiles, 3)
	eq(t, "connection-ttl-override", c.ConnectionTTLOverride, 18*time.Second)
	eq(t, "id-cache-size", c.IDCacheSize, 5000)
	eq(t, "persist-id-cache", c.PersistIDCache, false)
	eq(t, "cluster-user", c.ClusterUser, "cu")
	eq(t, "cluster-password", c.ClusterPassword, "cp")
	eq(t, "management", c.ManagementAddress, "0.0.0.0:8162")
	eq(t, "acceptor", c.Acceptors[0].Address(), "0.0.0.0:61617")
	eq(t, "acceptor param", c.Acceptors[0].Params["tcpSendBufferSize"], "1048576")
	eq(t, "connector v6", c.Connectors[1].Address(), "[::1]:61618")
	cc := c.ClusterConnections[0]
	eq(t, "cluster connector-ref", cc.ConnectorRef, "me")
	eq(t, "static", strings.Join(cc.StaticConnectors, ","), "peer")
	eq(t, "balancing", cc.MessageLoadBalancing, "STRICT")
	eq(t, "max-hops", cc.MaxHops, 2)
	eq(t, "retry-interval", cc.RetryInterval, 750*time.Millisecond)
	eq(t, "reconnect-attempts", cc.ReconnectAttempts, -1)
	eq(t, "users", len(c.Users), 2)
	eq(t, "roles", strings.Join(c.Users[0].Roles, "|"), "admin|amq")
	eq(t, "anonymous", c.AnonymousAllowed(), false)
	eq(t, "policy", c.HA.Policy, PolicyNone)
	if len(warns) != 3 || !strings.Contains(warns[0].String(), "broker.xml:13: warning: journal-datasync is false") ||
		!strings.Contains(warns[1].String(), "broker.xml:26: warning: acceptor") ||
		!strings.Contains(warns[2].String(), "broker.xml:29: warning: <users> keeps passwords in clear text") {
		t.Errorf("want warnings for journal-datasync (line 13), acceptor parameters (line 26) and clear-text passwords (line 29), got %v", warns)
	}
}

func TestDefaults(t *testing.T) {
	c := Default()
	j := c.Journal
	eq(t, "journal-type", j.Type, "ASYNCIO")
	eq(t, "journal-file-size", j.FileSize, int64(10<<20))
	eq(t, "journal-min-files", j.MinFiles, 2)
	eq(t, "journal-pool-files", j.PoolFiles, -1)
	eq(t, "journal-buffer-timeout (adaptive)", j.BufferTimeout, time.Duration(0))
	eq(t, "journal-buffer-size", j.BufferSize, 501760)
	eq(t, "journal-max-io", j.MaxIO, 4096)
	eq(t, "journal-compact", j.CompactPercentage*100+j.CompactMinFiles, 30*100+10)
	eq(t, "journal dir", c.Dirs.Journal, filepath.Join("data", "journal"))
	eq(t, "large dir", c.Dirs.LargeMessages, filepath.Join("data", "large-messages"))
	eq(t, "lock dir", c.Dirs.NodeManagerLock, c.Dirs.Journal)
	eq(t, "acceptor", c.Acceptors[0].Address(), "127.0.0.1:61616")
	eq(t, "management", c.ManagementAddress, "127.0.0.1:8161")
	eq(t, "policy", c.HA.Policy, PolicyNone)
	eq(t, "coordinator", c.HA.Coordinator, CoordNone)
	eq(t, "anonymous", c.AnonymousAllowed(), true)
	eq(t, "restart-backup (Tandem)", c.HA.RestartBackup, true)
	eq(t, "allow-failback", c.HA.AllowFailback, true)
	eq(t, "failover-on-shutdown", c.HA.FailoverOnShutdown, false)
	eq(t, "connection-ttl-override", ms(c.ConnectionTTLOverride), int64(-1))

	c.ApplyDataDir("/srv/d")
	eq(t, "data journal", c.Dirs.Journal, "/srv/d/journal")
	eq(t, "data paging", c.Dirs.Paging, "/srv/d/paging")
	eq(t, "data lock", c.Dirs.NodeManagerLock, "/srv/d/journal")

	// Paths set in the file win over --data.
	c, _, err := parseString(t, core(`<paging-directory>/p</paging-directory>`))
	if err != nil {
		t.Fatal(err)
	}
	c.ApplyDataDir("/srv/d")
	eq(t, "file paging wins", c.Dirs.Paging, "/p")
	eq(t, "data journal", c.Dirs.Journal, "/srv/d/journal")
}

func TestByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"10485760", 10485760}, {"10M", 10 << 20}, {"10MB", 10 << 20}, {"10MiB", 10 << 20},
		{"10 mb", 10 << 20}, {"512K", 512 << 10}, {"512kb", 512 << 10}, {"1G", 1 << 30},
		{"1GiB", 1 << 30}, {"100B", 100},
	} {
		got, err := parseByteSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "M", "10X", "10MBB", "ten", "99999999999999999999", "9999999999999T"} {
		if _, err := parseByteSize(bad); err == nil {
			t.Errorf("parseByteSize(%q) accepted", bad)
		}
	}
}

func TestJournalTypes(t *testing.T) {
	for _, tc := range []struct {
		typ   string
		kind  aio.Kind
		maxIO int
		warn  bool
	}{
		{"ASYNCIO", aio.IOUring, 4096, false},
		{"NIO", aio.NIO, 1, false},
		{"DIRECT", aio.Direct, 1, false},
		{"MAPPED", aio.NIO, 1, true},
		{"nio", aio.NIO, 1, false},
	} {
		c, warns, err := parseString(t, core("<journal-type>"+tc.typ+"</journal-type>"))
		if err != nil {
			t.Fatalf("%s: %v", tc.typ, err)
		}
		eq(t, tc.typ+" backend", c.Journal.Backend, tc.kind)
		eq(t, tc.typ+" max-io", c.Journal.MaxIO, tc.maxIO)
		eq(t, tc.typ+" warned", len(warns) == 1, tc.warn)
	}
}

func TestDatabaseStore(t *testing.T) {
	c, _, err := parseString(t, core(
		`<store><database-store>`,
		`<jdbc-connection-url>jdbc:postgresql://db:5432/artemis?user=a&amp;password=secret</jdbc-connection-url>`,
		`<jdbc-driver-class-name>org.postgresql.Driver</jdbc-driver-class-name>`,
		`<message-table-name>MSG1</message-table-name>`,
		`<bindings-table-name>BIND1</bindings-table-name>`,
		`<node-manager-store-table-name>NODE1</node-manager-store-table-name>`,
		`<jdbc-lock-expiration>10000</jdbc-lock-expiration>`,
		`<jdbc-lock-renew-period>2000</jdbc-lock-renew-period>`,
		`<jdbc-network-timeout>5000</jdbc-network-timeout>`,
		`</database-store></store>`,
		`<ha-policy><shared-store><primary/></shared-store></ha-policy>`,
	))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Store
	eq(t, "message table", s.MessageTable, "MSG1")
	eq(t, "bindings table", s.BindingsTable, "BIND1")
	eq(t, "node table", s.NodeManagerStoreTable, "NODE1")
	eq(t, "large table (default)", s.LargeMessageTable, "LARGE_MESSAGES")
	eq(t, "expiration", s.LockExpiration, 10*time.Second)
	eq(t, "renew", s.LockRenewPeriod, 2*time.Second)
	eq(t, "network", s.NetworkTimeout, 5*time.Second)
	eq(t, "coordinator", c.HA.Coordinator, CoordJDBCLease)
	u, err := s.PgxURL()
	if err != nil || !strings.HasPrefix(u, "postgresql://db:5432/artemis?") || !strings.Contains(u, "password=secret") {
		t.Errorf("PgxURL = %q, %v", u, err)
	}
	out, _ := c.JSON()
	if strings.Contains(string(out), "secret") {
		t.Errorf("JSON shows the password:\n%s", out)
	}
}

// TestErrors checks that broken files are rejected with the right line.
func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		line int
		msg  string
	}{
		{"typo in core", core(`<name>a</name>`, `<jornal-type>NIO</jornal-type>`), 4, "did you mean <journal-type>"},
		{"bad journal type", core(`<journal-type>FAST</journal-type>`), 3, "not a journal type"},
		{"bad boolean", core(`<persistence-enabled>yes</persistence-enabled>`), 3, "not a boolean"},
		{"bad size", core(``, `<journal-file-size>10Q</journal-file-size>`), 4, "unknown unit"},
		{"min files", core(`<journal-min-files>1</journal-min-files>`), 3, "journal-min-files 1 out of range [2, 1000]"},
		{"duplicate", core(`<name>a</name>`, `<name>b</name>`), 4, "appears twice"},
		{"two policies", core(`<ha-policy>`, `<shared-store><primary/></shared-store>`, `<replication><primary/></replication>`, `</ha-policy>`), 5, "two policies"},
		{"two roles", core(`<ha-policy><replication>`, `<master/>`, `<slave/>`, `</replication></ha-policy>`), 5, "two roles"},
		{"option of another policy", core(`<ha-policy><shared-store><primary>`, `<vote-retries>3</vote-retries>`, `</primary></shared-store></ha-policy>`), 4, "not an option of <shared-store><primary>"},
		{"quorum option with manager", core(`<ha-policy><replication><primary>`, `<manager><properties><property key="connect-string" value="a:1"/></properties></manager>`, `<vote-on-replication-failure>true</vote-on-replication-failure>`, `</primary></replication></ha-policy>`), 5, "quorum vote"},
		{"manager in master", core(`<ha-policy><replication><master>`, `<manager/>`, `</master></replication></ha-policy>`), 4, "not allowed in <master>"},
		{"typo in backup", core(`<ha-policy><shared-store><slave>`, `<allow-failbak>true</allow-failbak>`, `</slave></shared-store></ha-policy>`), 4, "did you mean <allow-failback>"},
		{"unknown policy", core(`<ha-policy>`, `<shared-storage/>`, `</ha-policy>`), 4, "did you mean <shared-store>"},
		{"empty replication", core(`<ha-policy>`, `<replication/>`, `</ha-policy>`), 4, "needs one of"},
		{"option outside role", core(`<ha-policy><replication>`, `<group-name>g</group-name>`, `</replication></ha-policy>`), 4, "belongs inside"},
		{"unknown zk property", core(`<ha-policy><replication><primary><manager><properties>`, `<property key="conect-string" value="a:1"/>`, `</properties></manager></primary></replication></ha-policy>`), 4, "did you mean connect-string"},
		{"scale-down both", core(`<ha-policy><live-only><scale-down>`, `<connectors><connector-ref>a</connector-ref></connectors>`, `<discovery-group-ref discovery-group-name="d"/>`, `</scale-down></live-only></ha-policy>`), 5, "choose one"},
		{"colocated option in role", core(`<ha-policy><shared-store><colocated><master>`, `<max-backups>2</max-backups>`, `</master></colocated></shared-store></ha-policy>`), 4, "option of <colocated>"},
		{"bad acceptor url", core(`<acceptors>`, `<acceptor name="a">tcp://host:99999</acceptor>`, `</acceptors>`), 4, "port"},
		{"missing connector", core(`<connectors><connector name="me">tcp://a:1</connector></connectors>`, `<cluster-connections>`, `<cluster-connection name="c"><connector-ref>nope</connector-ref></cluster-connection>`, `</cluster-connections>`), 5, "not defined"},
		{"replication with database", core(`<store><database-store><jdbc-connection-url>jdbc:postgresql://h/d</jdbc-connection-url></database-store></store>`, `<ha-policy><replication><master/></replication></ha-policy>`), 3, "cannot be used with <replication>"},
		{"not postgres", core(`<store>`, `<database-store><jdbc-connection-url>jdbc:derby:memory:x</jdbc-connection-url></database-store>`, `</store>`), 4, "PostgreSQL"},
		{"stray text", core(`<ha-policy>`, `<live-only>oops</live-only>`, `</ha-policy>`), 4, "unexpected text"},
		{"xml syntax", core(`<name>a</nam>`), 3, "XML syntax error"},
		{"unclosed", "<configuration>\n<core>\n<name>a</name>\n", 4, "unexpected EOF"},
		{"root", "<core/>", 1, "want <configuration>"},
		{"no core", "<configuration>\n</configuration>", 1, "no <core>"},
		{"foreign namespace", core(`<x:name xmlns:x="urn:other">a</x:name>`), 3, "namespace"},
		{"user without password", core(`<security><users>`, `<user name="a"/>`, `</users></security>`), 4, "password"},
		{"leaf with children", core(`<name><x/></name>`), 3, "takes a value"},
		{"empty file", "", 1, "empty document"},
		{"policy outside core", "<configuration>\n<core/>\n<ha-policy/>\n</configuration>", 3, "belongs inside <core>"},
		{"core setting in policy", core(`<ha-policy><shared-store><primary>`, `<journal-type>NIO</journal-type>`, `</primary></shared-store></ha-policy>`), 4, "is a <core> setting"},
		{"manager in colocated", core(`<ha-policy><replication><colocated>`, `<primary><manager/></primary>`, `</colocated></replication></ha-policy>`), 4, "colocated"},
		{"two stores", core(`<store>`, `<file-store/>`, `<database-store/>`, `</store>`), 5, "two stores"},
		{"renew not shorter", core(`<store><database-store>`, `<jdbc-connection-url>jdbc:postgresql://h/d</jdbc-connection-url><jdbc-lock-expiration>2000</jdbc-lock-expiration><jdbc-lock-renew-period>2000</jdbc-lock-renew-period>`, `</database-store></store>`), 3, "shorter"},
		{"duplicate acceptor", core(`<acceptors>`, `<acceptor name="a">tcp://h:1</acceptor>`, `<acceptor name="a">tcp://h:2</acceptor>`, `</acceptors>`), 5, "defined twice"},
		{"both check names", core(`<ha-policy><replication><master>`, `<check-for-live-server>true</check-for-live-server>`, `<check-for-active-server>true</check-for-active-server>`, `</master></replication></ha-policy>`), 5, "same option"},
		{"negative vote retries", core(`<ha-policy><replication><slave>`, `<vote-retries>-3</vote-retries>`, `</slave></replication></ha-policy>`), 4, "vote-retries -3 out of range [0, 1000]"},
		{"bad class-name", core(`<ha-policy><replication><backup><manager>`, `<class-name>org.example.FileLockManager</class-name>`, `</manager></backup></replication></ha-policy>`), 4, "ZooKeeper manager only"},
		{"ha without persistence", core(`<persistence-enabled>false</persistence-enabled>`, `<ha-policy><shared-store><primary/></shared-store></ha-policy>`), 4, "persistence-enabled"},
		{"policy outside ha-policy", core(`<name>x</name>`, `<live-only/>`), 4, "belongs inside <ha-policy>"},
		{"unsupported encoding", "<?xml version=\"1.0\" encoding=\"EBCDIC\"?>\n<configuration/>", 1, "not supported"},
		{"jms namespace elsewhere", core(`<x xmlns="urn:activemq:jms"/>`), 3, "unknown element <x> in <core>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := parseString(t, tc.doc)
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.doc)
			}
			if c != nil {
				t.Error("config returned with an error")
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *config.Error", err)
			}
			if ce.Line != tc.line || ce.File != "broker.xml" || !strings.Contains(ce.Msg, tc.msg) {
				t.Errorf("got %q, want broker.xml:%d: ...%s...", err, tc.line, tc.msg)
			}
			if !strings.HasPrefix(err.Error(), "broker.xml:") {
				t.Errorf("error %q does not start with FILE:LINE", err)
			}
		})
	}
}

// TestWarnings checks elements Artemis allows but Tandem does not implement.
func TestWarnings(t *testing.T) {
	c, warns, err := parseString(t, core(
		`<address-settings><address-setting match="#"><slow-consumer-policy>KILL</slow-consumer-policy></address-setting></address-settings>`,
		`<bridges/>`,
		`<diverts/>`,
		`<global-max-messages>100</global-max-messages>`,
		`<acceptors><acceptor name="a">tcp://0.0.0.0:61616?protocols=CORE,AMQP;useEpoll=true</acceptor></acceptors>`,
		`<journal-type>MAPPED</journal-type>`,
	))
	if err != nil {
		t.Fatal(err)
	}
	if c.Journal.Backend != aio.NIO {
		t.Error("MAPPED is not run as NIO")
	}
	want := []string{
		"broker.xml:3: warning: <slow-consumer-policy> in <address-setting> not supported yet, ignored",
		"broker.xml:4: warning: <bridges> not supported yet, ignored",
		"broker.xml:5: warning: <diverts> not supported yet, ignored",
		"broker.xml:6: warning: <global-max-messages> not supported yet, ignored",
		"broker.xml:7: warning: acceptor \"a\": URL parameters useEpoll not supported yet, ignored",
		"broker.xml:8: warning: journal-type MAPPED",
	}
	if len(warns) != len(want) {
		t.Fatalf("got %d warnings %v, want %d", len(warns), warns, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(warns[i].String(), w) {
			t.Errorf("warning %d = %q, want prefix %q", i, warns[i], w)
		}
	}
}

func TestNamespaces(t *testing.T) {
	for _, doc := range []string{
		"<configuration><core><name>n</name></core></configuration>",
		`<configuration xmlns="urn:activemq"><core><name>n</name></core></configuration>`,
		`<configuration xmlns="urn:activemq" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="urn:activemq /schema/artemis-configuration.xsd"><core xmlns="urn:activemq:core"><name>n</name></core></configuration>`,
		`<?xml version="1.0" encoding="UTF-8"?><a:configuration xmlns:a="urn:activemq"><c:core xmlns:c="urn:activemq:core"><c:name>n</c:name></c:core></a:configuration>`,
	} {
		c, _, err := parseString(t, doc)
		if err != nil {
			t.Errorf("%s: %v", doc, err)
			continue
		}
		eq(t, "name", c.Name, "n")
	}
}

func TestEncodings(t *testing.T) {
	for _, doc := range []string{
		"\xef\xbb\xbf<?xml version=\"1.0\"?>\n<configuration><core><name>café</name></core></configuration>",
		"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<configuration><core><name>caf\xe9</name></core></configuration>",
	} {
		c, _, err := parseString(t, doc)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "name", c.Name, "café")
	}
}

func TestLoadInstanceDir(t *testing.T) {
	dir := t.TempDir()
	c, _, err := Load(filepath.Join("testdata", "seed", "245-live-only.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(c.Dirs.Journal) || !strings.HasSuffix(c.Dirs.Journal, filepath.Join("seed", "data", "journal")) {
		t.Errorf("journal dir %q not under the file's directory", c.Dirs.Journal)
	}
	if _, _, err := Load(filepath.Join(dir, "missing.xml")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestManagerProperties(t *testing.T) {
	c, _, err := parseString(t, core(`<ha-policy><replication><primary>`,
		`<manager><class-name>`+CuratorLockManager+`</class-name><properties>`,
		`<property key="connect-string" value="z1:2181,z2:2181"/>`,
		`<property key="namespace" value="ns"/>`,
		`<property key="session-ms" value="9000"/>`,
		`<property key="session-percent" value="50"/>`,
		`<property key="connection-ms" value="4000"/>`,
		`<property key="retries" value="3"/>`,
		`<property key="retries-ms" value="250"/>`,
		`</properties></manager>`,
		`<coordination-id>peer-a</coordination-id>`,
		`<retry-replication-wait>1500</retry-replication-wait>`,
		`<initial-replication-sync-timeout>9000</initial-replication-sync-timeout>`,
		`<cluster-name>c1</cluster-name>`,
		`</primary></replication></ha-policy>`))
	if err != nil {
		t.Fatal(err)
	}
	m := c.HA.Manager
	eq(t, "connect-string", m.ConnectString, "z1:2181,z2:2181")
	eq(t, "namespace", m.Namespace, "ns")
	eq(t, "session-ms", m.SessionTimeout, 9*time.Second)
	eq(t, "session-percent", m.SessionPercent, 50)
	eq(t, "connection-ms", m.ConnectionTimeout, 4*time.Second)
	eq(t, "retries", m.Retries, 3)
	eq(t, "retries-ms", m.RetriesWait, 250*time.Millisecond)
	eq(t, "coordination-id", c.HA.CoordinationID, "peer-a")
	eq(t, "retry-replication-wait", c.HA.RetryReplicationWait, 1500*time.Millisecond)
	eq(t, "initial-replication-sync-timeout", c.HA.InitialReplicationSyncTimeout, 9*time.Second)
	eq(t, "cluster-name", c.HA.ClusterName, "c1")
	for _, bad := range []string{`key="session-ms" value="x"`, `key="session-percent" value="101"`, `key="retries" value="-1"`, `key="connect-string" value=""`, `key="session-ms"`} {
		_, _, err := parseString(t, core(`<ha-policy><replication><backup><manager><properties>`, `<property `+bad+`/>`, `</properties></manager></backup></replication></ha-policy>`))
		var ce *Error
		if !errors.As(err, &ce) || ce.Line != 4 {
			t.Errorf("%s: got %v, want an error at line 4", bad, err)
		}
	}
}

func TestClusterConnectionFields(t *testing.T) {
	c, warns, err := parseString(t, core(
		`<connectors><connector name="me">tcp://a:61616</connector></connectors>`,
		`<discovery-groups><discovery-group name="dg"><group-address>231.7.7.7</group-address><group-port>9876</group-port><refresh-timeout>5000</refresh-timeout></discovery-group></discovery-groups>`,
		`<cluster-connections><cluster-connection name="c">`,
		`<address></address><connector-ref>me</connector-ref>`,
		`<retry-interval-multiplier>1.5</retry-interval-multiplier><max-retry-interval>9000</max-retry-interval>`,
		`<reconnect-attempts>5</reconnect-attempts><initial-connect-attempts>2</initial-connect-attempts>`,
		`<call-timeout>1000</call-timeout><check-period>2000</check-period><connection-ttl>3000</connection-ttl>`,
		`<use-duplicate-detection>false</use-duplicate-detection>`,
		`<confirmation-window-size>1048576</confirmation-window-size>`,
		`<discovery-group-ref discovery-group-name="dg"/>`,
		`</cluster-connection></cluster-connections>`))
	if err != nil {
		t.Fatal(err)
	}
	cc := c.ClusterConnections[0]
	eq(t, "multiplier", cc.RetryMultiplier, 1.5)
	eq(t, "max-retry-interval", cc.MaxRetryInterval, 9*time.Second)
	eq(t, "reconnect-attempts", cc.ReconnectAttempts, 5)
	eq(t, "initial-connect-attempts", cc.InitialConnect, 2)
	eq(t, "call-timeout", cc.CallTimeout, time.Second)
	eq(t, "check-period", cc.CheckPeriod, 2*time.Second)
	eq(t, "connection-ttl", cc.ConnectionTTL, 3*time.Second)
	eq(t, "use-duplicate-detection", cc.DuplicateDetection, false)
	eq(t, "discovery-group-ref", cc.DiscoveryGroupRef, "dg")
	eq(t, "refresh-timeout", c.DiscoveryGroups[0].RefreshTimeout, 5*time.Second)
	// The discovery group and confirmation-window-size are warned about.
	if len(warns) != 2 || !strings.Contains(warns[1].Msg, "confirmation-window-size") {
		t.Errorf("warnings %v", warns)
	}
	if _, _, err := parseString(t, core(`<cluster-connections><cluster-connection name="c">`, `<retry-interval-multiplier>NaN</retry-interval-multiplier>`, `</cluster-connection></cluster-connections>`)); err == nil {
		t.Error("NaN multiplier accepted")
	}
}

// TestValuesRunCannotUse: values that config check used to accept but the
// broker cannot run with are refused by the parser, which both config
// check and run use, with the element's range: journal-min-files
// 2147483647 (run preallocated segments until the disk was full) and
// journal-file-size 2^63-1 (accepted with a rounding warning, refused by
// the journal at run).
func TestValuesRunCannotUse(t *testing.T) {
	for _, tc := range []struct{ doc, msg string }{
		{core(`<journal-min-files>2147483647</journal-min-files>`), "journal-min-files 2147483647 out of range [2, 1000]"},
		{core(`<journal-file-size>9223372036854775807</journal-file-size>`), "journal-file-size 9223372036854775807 out of range [65536, 1073741824] bytes"},
		{core(`<journal-file-size>8T</journal-file-size>`), "journal-file-size 8796093022208 out of range [65536, 1073741824] bytes"},
		{core(`<journal-pool-files>100000</journal-pool-files>`), "journal-pool-files 100000 out of range [-1, 1000]"},
		{core(`<id-cache-size>2147483647</id-cache-size>`), "id-cache-size 2147483647 out of range [0, 1000000]"},
		{core(`<connection-ttl-override>9223372036854775807</connection-ttl-override>`), "connection-ttl-override 9223372036854775807 out of range [-1, 86400000] ms"},
	} {
		c, warns, err := parseString(t, tc.doc)
		if err == nil {
			t.Errorf("accepted (warnings %v): %s", warns, tc.doc)
			continue
		}
		if c != nil {
			t.Error("config returned with an error")
		}
		if want := "broker.xml:3: " + tc.msg; err.Error() != want {
			t.Errorf("got %q, want %q", err, want)
		}
	}
}
