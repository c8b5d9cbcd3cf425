package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/tandemmq/tandem/auth"
	"github.com/tandemmq/tandem/config"
)

func init() {
	register(command{
		name:    "create",
		summary: "create DIR: write a broker instance (DIR/etc/broker.xml, DIR/data), like artemis create",
		run:     func(args []string) int { return runCreate(args, os.Stdout, os.Stderr) },
	})
}

// createOptions are the values the broker.xml template is filled with.
type createOptions struct {
	Dir             string
	Name            string
	HA              string
	Host            string // acceptor bind address
	ConnHost        string // address other nodes use for this broker
	Port            int
	HTTP            string
	ZK              string
	SharedDir       string
	JDBCURL         string
	Group           string
	Peers           []string
	ClusterUser     string
	ClusterPassword string
	User            string
	Password        string
	Roles           string
	// RequireLogin (the default) refuses clients without credentials;
	// AllowAnonymous lets them in with Roles.
	RequireLogin   bool
	AllowAnonymous bool
	// TLS on the acceptor and connectors (Artemis's create options).
	SSLKey, SSLKeyPassword, SSLTrust, SSLTrustPassword string
	ClientAuth                                         bool
}

// AcceptorParams are the acceptor URL's TLS parameters ("" without TLS).
func (o *createOptions) AcceptorParams() string {
	if o.SSLKey == "" {
		return ""
	}
	p := "?sslEnabled=true;keyStorePath=" + o.SSLKey
	if o.SSLKeyPassword != "" {
		p += ";keyStorePassword=" + o.SSLKeyPassword
	}
	if o.ClientAuth {
		p += ";needClientAuth=true;trustStorePath=" + o.SSLTrust
		if o.SSLTrustPassword != "" {
			p += ";trustStorePassword=" + o.SSLTrustPassword
		}
	}
	return p
}

// ConnectorParams are the connectors' TLS parameters ("" without TLS):
// brokers of the cluster dial each other with them.
func (o *createOptions) ConnectorParams() string {
	if o.SSLKey == "" {
		return ""
	}
	p := "?sslEnabled=true"
	if o.SSLTrust != "" {
		p += ";trustStorePath=" + o.SSLTrust
		if o.SSLTrustPassword != "" {
			p += ";trustStorePassword=" + o.SSLTrustPassword
		}
	}
	if o.ClientAuth {
		p += ";keyStorePath=" + o.SSLKey
		if o.SSLKeyPassword != "" {
			p += ";keyStorePassword=" + o.SSLKeyPassword
		}
	}
	return p
}

// Policy and role of each --ha value.
var createHA = map[string][2]string{
	"none":                 {"", ""},
	"shared-store-primary": {"shared-store", "primary"},
	"shared-store-backup":  {"shared-store", "backup"},
	"replication-primary":  {"replication", "primary"},
	"replication-backup":   {"replication", "backup"},
}

func (o *createOptions) Policy() string { return createHA[o.HA][0] }
func (o *createOptions) Role() string   { return createHA[o.HA][1] }

// Data returns the directory holding journal, bindings, paging and
// large-messages: the shared directory for shared store, else data/.
func (o *createOptions) Data() string {
	if o.SharedDir != "" {
		return o.SharedDir
	}
	return "data"
}

// runCreate implements `tandem create DIR` (docs/cli.md).
func runCreate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &createOptions{}
	fs.StringVar(&o.HA, "ha", "none", "HA role: none, shared-store-primary, shared-store-backup, replication-primary, replication-backup")
	fs.IntVar(&o.Port, "port", 61616, "acceptor port")
	fs.StringVar(&o.Host, "host", "0.0.0.0", "acceptor bind address")
	fs.StringVar(&o.ConnHost, "connector-host", "", "address other brokers and clients use to reach this one (default: --host, or localhost when it is 0.0.0.0)")
	fs.StringVar(&o.Name, "name", "", "broker name (default: the base name of DIR)")
	fs.StringVar(&o.HTTP, "http", "", "management HTTP address (default 127.0.0.1:8161, shifted by --port minus 61616 so two brokers fit on one machine)")
	fs.StringVar(&o.Group, "group", "", "HA group name: a backup pairs only with a primary of the same group (default: none, any primary)")
	fs.StringVar(&o.ZK, "zk", "", "ZooKeeper connect string host:port,...: replication coordinated by ZooKeeper (default: quorum vote)")
	fs.StringVar(&o.SharedDir, "shared-dir", "", "shared-store directory (SAN/NFS) for journal, bindings, paging and large messages")
	fs.StringVar(&o.JDBCURL, "jdbc-url", "", "shared store in PostgreSQL instead of files: jdbc:postgresql://host:5432/db?user=...&password=...")
	peers := fs.String("peer", "", "comma-separated URLs of the other brokers of the cluster (default for HA roles: tcp://localhost:61617, or :61616 when --port is 61617)")
	fs.StringVar(&o.ClusterUser, "cluster-user", "tandem-cluster", "user brokers authenticate to each other with")
	fs.StringVar(&o.ClusterPassword, "cluster-password", "change-me", "password brokers authenticate to each other with (the same on every broker)")
	fs.StringVar(&o.User, "user", "", "the admin user, written to etc/users with its password hashed (default: asked on a terminal)")
	fs.StringVar(&o.Password, "password", "", "password of --user (default: asked on a terminal)")
	fs.StringVar(&o.Roles, "role", "amq", "roles of --user (comma-separated); the security-settings written give them every permission")
	fs.BoolVar(&o.RequireLogin, "require-login", true, "clients must log in (the default)")
	fs.BoolVar(&o.AllowAnonymous, "allow-anonymous", false, "let clients without credentials in, with --role's permissions (like artemis create --allow-anonymous)")
	fs.StringVar(&o.SSLKey, "ssl-key", "", "TLS on the acceptor: the broker's key and certificate (a PEM file, or a PKCS#12 keystore)")
	fs.StringVar(&o.SSLKeyPassword, "ssl-key-password", "", "the password of --ssl-key (PKCS#12, or an encrypted PEM key)")
	fs.StringVar(&o.SSLTrust, "ssl-trust", "", "the certificate authorities to trust (PEM or PKCS#12): the cluster's connectors verify peers with it, and --use-client-auth checks clients' certificates against it")
	fs.StringVar(&o.SSLTrustPassword, "ssl-trust-password", "", "the password of --ssl-trust (PKCS#12)")
	fs.BoolVar(&o.ClientAuth, "use-client-auth", false, "clients must present a certificate signed by --ssl-trust")
	force := fs.Bool("force", false, "overwrite an existing etc/broker.xml")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tandem create [flags] DIR")
		fs.PrintDefaults()
	}
	// Accept flags after DIR too (tandem create DIR --ha ...).
	var dir string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitOK
			}
			return exitCannot
		}
		if fs.NArg() == 0 {
			break
		}
		if dir != "" {
			fmt.Fprintf(stderr, "tandem create: more than one DIR (%q and %q)\n", dir, fs.Arg(0))
			return exitCannot
		}
		dir, rest = fs.Arg(0), fs.Args()[1:]
	}
	if dir == "" {
		fs.Usage()
		return exitCannot
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["require-login"] && o.RequireLogin && o.AllowAnonymous {
		fmt.Fprintln(stderr, "tandem create: --require-login and --allow-anonymous exclude each other")
		return exitCannot
	}
	if o.AllowAnonymous || (set["require-login"] && !o.RequireLogin) {
		o.RequireLogin, o.AllowAnonymous = false, true
	}
	if o.User == "" && !o.AllowAnonymous {
		if err := askAdmin(o, os.Stdin, stderr); err != nil {
			fmt.Fprintf(stderr, "tandem create: %v\n", err)
			return exitCannot
		}
	}
	if err := o.finish(dir, *peers); err != nil {
		fmt.Fprintf(stderr, "tandem create: %v\n", err)
		return exitCannot
	}
	xml, err := o.render()
	if err != nil {
		fmt.Fprintf(stderr, "tandem create: %v\n", err)
		return exitCannot
	}
	brokerXML := filepath.Join(dir, "etc", "broker.xml")
	if _, err := os.Stat(brokerXML); err == nil && !*force {
		fmt.Fprintf(stderr, "tandem create: %s exists (use --force to overwrite)\n", brokerXML)
		return exitCannot
	}
	for _, d := range []string{filepath.Join(dir, "etc"), filepath.Join(dir, "data")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			fmt.Fprintf(stderr, "tandem create: %v\n", err)
			return exitCannot
		}
	}
	if err := os.WriteFile(brokerXML, xml, 0o600); err != nil {
		fmt.Fprintf(stderr, "tandem create: %v\n", err)
		return exitCannot
	}
	// The users file keeps the users it has (create --force on an
	// instance): the admin user is added or replaced.
	usersFile := filepath.Join(dir, "etc", config.DefaultUsersFile)
	err = auth.UpdateUsersFile(usersFile, func(users []auth.User) ([]auth.User, error) {
		if o.User == "" {
			return users, nil
		}
		hash, err := auth.HashPassword(o.Password)
		if err != nil {
			return nil, err
		}
		users = slices.DeleteFunc(users, func(u auth.User) bool { return u.Name == o.User })
		return append(users, auth.User{Name: o.User, Roles: splitRoles(o.Roles), Hash: hash}), nil
	})
	if err != nil {
		fmt.Fprintf(stderr, "tandem create: %v\n", err)
		return exitCannot
	}
	// The generated file must pass the same check as `tandem config check`.
	if _, _, err := config.Load(brokerXML); err != nil {
		fmt.Fprintf(stderr, "tandem create: the generated %s does not pass config check (a bug):\n%v\n", brokerXML, err)
		return exitCannot
	}
	fmt.Fprintf(stdout, "Created Tandem broker instance %q at %s (ha: %s)\n", o.Name, dir, o.HA)
	fmt.Fprintf(stdout, "  configuration: %s\n  data:          %s\n", brokerXML, filepath.Join(dir, "data"))
	switch {
	case o.User != "" && o.AllowAnonymous:
		fmt.Fprintf(stdout, "  users:         %s (user %q; anonymous clients allowed too)\n", usersFile, o.User)
	case o.User != "":
		fmt.Fprintf(stdout, "  users:         %s (user %q; clients must log in)\n", usersFile, o.User)
	default:
		fmt.Fprintf(stdout, "  users:         %s (none; anonymous clients allowed; add one with tandem user add)\n", usersFile)
	}
	fmt.Fprintf(stdout, "Start it with:\n  cd %s && tandem run\n", dir)
	return exitOK
}

// finish validates the flags and fills in derived values.
func (o *createOptions) finish(dir, peers string) error {
	if _, ok := createHA[o.HA]; !ok {
		return fmt.Errorf("--ha %q: want none, shared-store-primary, shared-store-backup, replication-primary or replication-backup", o.HA)
	}
	if o.Port < 1 || o.Port > 65535 {
		return fmt.Errorf("--port %d: want 1 to 65535", o.Port)
	}
	if o.Name == "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return err
		}
		o.Name = filepath.Base(abs)
	}
	o.Dir = dir
	if o.HTTP == "" {
		o.HTTP = config.DefaultManagementAddress
		if p := 8161 + o.Port - 61616; p != 8161 && p > 0 && p < 65536 {
			o.HTTP = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		}
	}
	if o.ConnHost == "" {
		o.ConnHost = o.Host
		if ip := net.ParseIP(o.Host); ip != nil && ip.IsUnspecified() {
			o.ConnHost = "localhost"
		}
	}
	switch o.Policy() {
	case "shared-store":
		if o.ZK != "" {
			return errors.New("--zk is for replication roles; shared store is coordinated by the shared directory's lock or the database lease")
		}
	case "replication":
		if o.SharedDir != "" || o.JDBCURL != "" {
			return errors.New("--shared-dir and --jdbc-url are for shared-store roles; replication copies the journal over the network")
		}
	default:
		if o.ZK != "" || o.SharedDir != "" || o.JDBCURL != "" {
			return errors.New("--zk, --shared-dir and --jdbc-url need an --ha role")
		}
	}
	if o.SharedDir != "" && o.JDBCURL != "" {
		return errors.New("choose --shared-dir (files) or --jdbc-url (PostgreSQL), not both")
	}
	if o.SharedDir != "" {
		abs, err := filepath.Abs(o.SharedDir)
		if err != nil {
			return err
		}
		o.SharedDir = abs
	}
	if (o.User == "") != (o.Password == "") {
		return errors.New("--user and --password go together")
	}
	if o.User != "" {
		if err := auth.CheckName(o.User); err != nil {
			return fmt.Errorf("--user: %w", err)
		}
	}
	for _, r := range splitRoles(o.Roles) {
		if err := auth.CheckRole(r); err != nil {
			return fmt.Errorf("--role: %w", err)
		}
	}
	if len(splitRoles(o.Roles)) == 0 {
		return errors.New("--role: give at least one role (the security-settings written grant it every permission)")
	}
	if (o.SSLTrust != "" || o.ClientAuth || o.SSLKeyPassword != "") && o.SSLKey == "" {
		return errors.New("--ssl-trust, --ssl-key-password and --use-client-auth need --ssl-key")
	}
	if o.ClientAuth && o.SSLTrust == "" {
		return errors.New("--use-client-auth needs --ssl-trust (the authorities of client certificates)")
	}
	for _, f := range []*string{&o.SSLKey, &o.SSLTrust} {
		if *f != "" {
			abs, err := filepath.Abs(*f)
			if err != nil {
				return err
			}
			if _, err := os.Stat(abs); err != nil {
				return err
			}
			*f = abs
		}
	}
	for _, v := range []string{o.SSLKey, o.SSLTrust, o.SSLKeyPassword, o.SSLTrustPassword} {
		if strings.ContainsAny(v, ";&?") {
			return fmt.Errorf("%q: characters ; & ? are not allowed in the TLS options (they go into the acceptor URL)", v)
		}
	}
	if o.Policy() != "" {
		for _, p := range strings.Split(peers, ",") {
			if p = strings.TrimSpace(p); p != "" {
				o.Peers = append(o.Peers, p)
			}
		}
		if len(o.Peers) == 0 {
			peer := 61617
			if o.Port == 61617 {
				peer = 61616
			}
			o.Peers = []string{"tcp://localhost:" + strconv.Itoa(peer)}
		}
	}
	for _, v := range []string{o.Name, o.Group, o.Host, o.ConnHost, o.HTTP, o.ZK, o.SharedDir, o.JDBCURL,
		o.ClusterUser, o.ClusterPassword, o.User, o.Roles, peers, o.SSLKey, o.SSLTrust, o.SSLKeyPassword, o.SSLTrustPassword} {
		if strings.ContainsAny(v, "<>\"'") && v != o.JDBCURL {
			return fmt.Errorf("%q: characters < > \" ' are not allowed in flag values", v)
		}
	}
	return nil
}

func (o *createOptions) render() ([]byte, error) {
	t, err := template.New("broker.xml").Funcs(template.FuncMap{"xml": xmlEscape}).Parse(brokerTemplate)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, o); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	_ = xmlEscapeTo(&b, s)
	return b.String()
}

func xmlEscapeTo(w io.Writer, s string) error {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;")
	_, err := r.WriteString(w, s)
	return err
}

const brokerTemplate = `<?xml version="1.0" encoding="UTF-8"?>
<!--
  broker.xml of Tandem broker "{{xml .Name}}", written by "tandem create" (HA role: {{.HA}}).

  The syntax is Apache ActiveMQ Artemis's broker.xml. Check a change with:
      tandem config check etc/broker.xml
  Relative paths are relative to the instance directory (the parent of etc/).
  "tandem run" with a data directory option moves every data directory not set here under it.
-->
<configuration xmlns="urn:activemq"
               xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
               xsi:schemaLocation="urn:activemq /schema/artemis-configuration.xsd">
   <core xmlns="urn:activemq:core">

      <!-- The node name shown in the banner, /status and the cluster topology. -->
      <name>{{xml .Name}}</name>

      <persistence-enabled>true</persistence-enabled>

      <!-- ASYNCIO: io_uring with O_DIRECT (falls back to DIRECT where the kernel refuses io_uring);
           DIRECT: O_DIRECT pwrite + fdatasync; NIO: buffered pwrite + fdatasync. -->
      <journal-type>ASYNCIO</journal-type>
{{- if eq .Policy "shared-store"}}{{if .SharedDir}}

      <!-- Shared store: the primary and its backup use the SAME directories on the shared
           file system (SAN or NFS; mount NFS with sync,intr,noac,soft,lookupcache=none).
           The lock files (server.lock) live in the journal directory. -->
{{- else if not .JDBCURL}}

      <!-- Shared store: point these at a directory that the primary and its backup share
           (SAN or NFS), e.g. with the shared-dir option of "tandem create". As written,
           each broker uses its own data/ directory and no failover can happen. -->
{{- end}}{{end}}
      <journal-directory>{{xml .Data}}/journal</journal-directory>
      <bindings-directory>{{xml .Data}}/bindings</bindings-directory>
      <paging-directory>{{xml .Data}}/paging</paging-directory>
      <large-messages-directory>{{xml .Data}}/large-messages</large-messages-directory>

      <!-- Segment size (10M, 10MB and 10MiB all mean 10485760 bytes), preallocated segments and
           how many emptied segments are kept for reuse. -->
      <journal-file-size>10M</journal-file-size>
      <journal-min-files>2</journal-min-files>
      <journal-pool-files>10</journal-pool-files>

      <!-- Group commit. 0 (Tandem's default) adapts the batch to the disk's fsync latency;
           a value in nanoseconds caps how long an append may wait for others. -->
      <journal-buffer-timeout>0</journal-buffer-timeout>
{{- if .JDBCURL}}

      <!-- Shared store in PostgreSQL: the primary and its backup use the same database and
           tables; the node-manager table holds the lease that decides which one is active. -->
      <store>
         <database-store>
            <jdbc-connection-url>{{xml .JDBCURL}}</jdbc-connection-url>
            <jdbc-driver-class-name>org.postgresql.Driver</jdbc-driver-class-name>
            <bindings-table-name>BINDINGS</bindings-table-name>
            <message-table-name>MESSAGES</message-table-name>
            <large-message-table-name>LARGE_MESSAGES</large-message-table-name>
            <page-store-table-name>PAGE_STORE</page-store-table-name>
            <node-manager-store-table-name>NODE_MANAGER_STORE</node-manager-store-table-name>
            <!-- The lease: a broker that cannot renew it for this long stops writing. -->
            <jdbc-lock-expiration>20000</jdbc-lock-expiration>
            <jdbc-lock-renew-period>4000</jdbc-lock-renew-period>
            <jdbc-network-timeout>20000</jdbc-network-timeout>
         </database-store>
      </store>
{{- end}}

      <!-- Where clients connect. -->
      <acceptors>
         <acceptor name="artemis">tcp://{{xml .Host}}:{{.Port}}{{xml .AcceptorParams}}</acceptor>
      </acceptors>

      <!-- The management HTTP listener (/status, /metrics, the management API and console, and
           /debug/pprof/ when it is loopback or <pprof-enabled> is true); the http option of
           "tandem run" overrides it. -->
      <management-http-address>{{xml .HTTP}}</management-http-address>

      <!-- Per-address settings (docs/address-settings.md): a message delivered 10 times without
           an acknowledgement goes to DLQ, an expired one to ExpiryQueue; past global-max-size of
           messages in memory (default: half of the memory) an address pages to disk. -->
      <address-settings>
         <address-setting match="#">
            <dead-letter-address>DLQ</dead-letter-address>
            <expiry-address>ExpiryQueue</expiry-address>
            <redelivery-delay>0</redelivery-delay>
            <max-delivery-attempts>10</max-delivery-attempts>
            <address-full-policy>PAGE</address-full-policy>
            <auto-create-queues>true</auto-create-queues>
            <auto-create-addresses>true</auto-create-addresses>
         </address-setting>
      </address-settings>

      <!-- Addresses and queues created at start. -->
      <addresses>
         <address name="DLQ">
            <anycast><queue name="DLQ"/></anycast>
         </address>
         <address name="ExpiryQueue">
            <anycast><queue name="ExpiryQueue"/></anycast>
         </address>
      </addresses>
{{- if .Policy}}

      <!-- How other brokers and HA clients reach this broker ("artemis") and its peers. Put an
           address here that the other machines can resolve. -->
      <connectors>
         <connector name="artemis">tcp://{{xml .ConnHost}}:{{.Port}}{{xml .ConnectorParams}}</connector>
{{- range $i, $p := .Peers}}
         <connector name="peer{{$i}}">{{xml $p}}{{xml $.ConnectorParams}}</connector>
{{- end}}
      </connectors>

      <!-- Brokers authenticate to each other with these; use the same values on every broker. -->
      <cluster-user>{{xml .ClusterUser}}</cluster-user>
      <cluster-password>{{xml .ClusterPassword}}</cluster-password>

      <!-- The cluster: this broker announces "artemis" and finds its peers through the static
           connectors. The backup pairs with its primary through it; clients learn the topology. -->
      <cluster-connections>
         <cluster-connection name="tandem-cluster">
            <connector-ref>artemis</connector-ref>
            <retry-interval>500</retry-interval>
            <use-duplicate-detection>true</use-duplicate-detection>
            <message-load-balancing>ON_DEMAND</message-load-balancing>
            <max-hops>1</max-hops>
            <static-connectors>
{{- range $i, $p := .Peers}}
               <connector-ref>peer{{$i}}</connector-ref>
{{- end}}
            </static-connectors>
         </cluster-connection>
      </cluster-connections>
{{- end}}
{{- if and (eq .Policy "replication") .ZK}}

      <!-- The backup waits connection-ttl before it fails over; keep it close to session-ms. -->
      <connection-ttl-override>18000</connection-ttl-override>
{{- end}}
{{- if eq .Policy "shared-store"}}

      <ha-policy>
         <shared-store>
{{- if eq .Role "primary"}}
            <!-- Starts active once it holds the {{if .JDBCURL}}database lease{{else}}lock in the journal directory{{end}}. -->
            <primary>
               <!-- true: a clean stop of this broker lets the backup take over. -->
               <failover-on-shutdown>false</failover-on-shutdown>
            </primary>
{{- else}}
            <!-- Waits for the primary's {{if .JDBCURL}}lease{{else}}lock{{end}}; activates when the primary dies. -->
            <backup>
               <!-- true: step back when the primary returns. -->
               <allow-failback>true</allow-failback>
               <!-- true: after stepping back, wait as backup again (Tandem's default). -->
               <restart-backup>true</restart-backup>
               <failover-on-shutdown>false</failover-on-shutdown>
            </backup>
{{- end}}
         </shared-store>
      </ha-policy>
{{- else if eq .Policy "replication"}}

      <ha-policy>
         <replication>
{{- if .ZK}}
            <!-- Coordinated by ZooKeeper (at least 3 nodes): a lease lock and an activation sequence
                 make sure only the broker with the newest journal becomes active. -->
            <{{.Role}}>
               <manager>
                  <class-name>org.apache.activemq.artemis.lockmanager.zookeeper.CuratorDistributedLockManager</class-name>
                  <properties>
                     <property key="connect-string" value="{{xml .ZK}}"/>
                     <!-- A broker that loses the ZooKeeper majority this long stops (primary) or waits (backup). -->
                     <property key="session-ms" value="18000"/>
                  </properties>
               </manager>
{{- if .Group}}
               <!-- A backup pairs only with a primary of the same group. -->
               <group-name>{{xml .Group}}</group-name>
{{- else}}
               <!-- <group-name>pair-1</group-name>: give a primary and its backup the same group name
                    to pair them explicitly; without one a backup pairs with any primary. -->
{{- end}}
{{- if eq .Role "backup"}}
               <allow-failback>true</allow-failback>
{{- end}}
            </{{.Role}}>
{{- else}}
            <!-- Coordinated by a quorum vote of every broker listed in the cluster connection
                 (docs/ha-replication-quorum.md): use at least 3 primary/backup pairs, and list
                 the same other brokers on both brokers of a pair; a lone pair is refused. -->
            <{{.Role}}>
{{- if .Group}}
               <!-- A backup pairs only with a primary of the same group. -->
               <group-name>{{xml .Group}}</group-name>
{{- else}}
               <!-- <group-name>pair-1</group-name>: give a primary and its backup the same group name
                    to pair them explicitly; without one a backup pairs with any primary. -->
{{- end}}
{{- if eq .Role "primary"}}
               <!-- On restart, look for a broker active with our node ID and fail back from it. -->
               <check-for-active-server>true</check-for-active-server>
               <vote-on-replication-failure>true</vote-on-replication-failure>
{{- else}}
               <allow-failback>true</allow-failback>
               <vote-retries>12</vote-retries>
               <vote-retry-wait>5000</vote-retry-wait>
{{- end}}
            </{{.Role}}>
{{- end}}
         </replication>
      </ha-policy>
{{- end}}

      <!-- Security (docs/security.md). Users are in etc/users, passwords hashed: manage them with
           "tandem user add|rm|ls|passwd" (a running broker reads changes within
           security-invalidation-interval, 10 s by default). -->
      <security-enabled>true</security-enabled>
      <security>
{{- if .AllowAnonymous}}
         <!-- Clients without credentials are let in, with these roles' permissions. -->
         <require-login>false</require-login>
         <anonymous-role>{{xml .Roles}}</anonymous-role>
{{- else}}
         <!-- Every client must log in (false lets anonymous clients in). -->
         <require-login>true</require-login>
{{- end}}
      </security>

      <!-- Who may do what, per address (Artemis's syntax: "#" matches every address, "orders.*"
           one word after "orders."). Permission types: send, consume, createDurableQueue,
           deleteDurableQueue, createNonDurableQueue, deleteNonDurableQueue, createAddress,
           deleteAddress, browse, manage. -->
      <security-settings>
         <security-setting match="#">
            <permission type="send" roles="{{xml .Roles}}"/>
            <permission type="consume" roles="{{xml .Roles}}"/>
            <permission type="createDurableQueue" roles="{{xml .Roles}}"/>
            <permission type="deleteDurableQueue" roles="{{xml .Roles}}"/>
            <permission type="createNonDurableQueue" roles="{{xml .Roles}}"/>
            <permission type="deleteNonDurableQueue" roles="{{xml .Roles}}"/>
            <permission type="createAddress" roles="{{xml .Roles}}"/>
            <permission type="deleteAddress" roles="{{xml .Roles}}"/>
            <permission type="browse" roles="{{xml .Roles}}"/>
            <permission type="manage" roles="{{xml .Roles}}"/>
         </security-setting>
      </security-settings>
   </core>
</configuration>
`

// askAdmin asks for the admin user and password on a terminal; without one
// it says which flags to give.
func askAdmin(o *createOptions, stdin *os.File, stderr io.Writer) error {
	if !isTerminal(stdin) {
		return errors.New("an admin user is needed: give --user NAME --password PW (clients must log in), or --allow-anonymous")
	}
	fmt.Fprint(stderr, "Admin user name [admin]: ")
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && line == "" {
		return err
	}
	o.User = strings.TrimSpace(line)
	if o.User == "" {
		o.User = "admin"
	}
	pw, err := readPassword(stdin, stderr, o.User)
	if err != nil {
		return err
	}
	if pw == "" {
		return errors.New("the password is empty")
	}
	o.Password = pw
	return nil
}
