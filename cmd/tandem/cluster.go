package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tandemmq/tandem/bench"
	"github.com/tandemmq/tandem/client"
)

func init() {
	register(command{name: "cluster", summary: "cluster status: the topology table", run: runCluster})
}

// defaultManagement is `tandem run`'s management address without
// configuration: `tandem cluster status` asks it when given neither
// --http nor --url.
const defaultManagement = "127.0.0.1:8161"

// runCluster is `tandem cluster status [--http ADDR] [--url URL]`.
func runCluster(args []string) int {
	if len(args) == 0 || args[0] != "status" {
		fmt.Fprintln(os.Stderr, "usage: tandem cluster status [--http ADDR] [--url URL] [--json]")
		return exitCannot
	}
	fs := flag.NewFlagSet("cluster status", flag.ContinueOnError)
	httpAddr := fs.String("http", "", "a broker's management address (host:port): GET /status (default "+defaultManagement+" when --url is not given either)")
	url := fs.String("url", "", "a broker URL: ask over the wire for the topology (store is unknown unless --http is given too)")
	asJSON := fs.Bool("json", false, "print the rows as a JSON array")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	if err := fs.Parse(args[1:]); err != nil {
		return exitCannot
	}
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "tandem cluster status: %v\n", err)
		return exitCannot
	}
	if fs.NArg() > 0 {
		return fail(fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	byDefault := *httpAddr == "" && *url == ""
	if byDefault {
		*httpAddr = defaultManagement
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var rows []clusterRow
	var st *bench.BrokerStatus
	if *httpAddr != "" {
		var err error
		if st, err = bench.FetchStatus(ctx, *httpAddr); err != nil {
			if byDefault {
				err = fmt.Errorf("%w (the local default management address; give --http ADDR or --url URL for another broker)", err)
			}
			return fail(err)
		}
		rows = statusRows(st)
	}
	if *url != "" {
		wrows, err := wireRows(ctx, *url)
		if err != nil {
			return fail(err)
		}
		rows = mergeRows(wrows, rows)
	}
	if *asJSON {
		b, _ := json.MarshalIndent(rows, "", "  ")
		fmt.Println(string(b))
		return exitOK
	}
	printClusterTable(os.Stdout, rows)
	if st != nil && st.Cluster != nil {
		printBridgeTable(os.Stdout, st.Cluster)
	}
	return exitOK
}

// printBridgeTable prints the answering broker's cluster bridges (message
// load balancing, docs/clustering.md).
func printBridgeTable(w io.Writer, c *bench.ClusterBridges) {
	fmt.Fprintf(w, "\ncluster bridges (message-load-balancing %s):\n", c.LoadBalancing)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tNAME\tCONNECTED\tFORWARDED\tPENDING\tREMOTE QUEUES\tREMOTE CONSUMERS\t")
	for _, p := range c.Peers {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%d\t%d\t%d\t\n", p.NodeID, p.Name, p.Connected, p.Forwarded, p.Pending,
			p.RemoteQueues, p.RemoteConsumers)
	}
	tw.Flush()
}

// clusterRow is one line of the topology table.
type clusterRow struct {
	Node    string `json:"node"`
	Role    string `json:"role"`
	State   string `json:"state"`
	Epoch   uint64 `json:"epoch"`
	Address string `json:"address"`
	Store   string `json:"store"` // "" when unknown (a peer's store is not in /status)
	Self    bool   `json:"self"`  // the broker that answered
}

// statusRows turns /status into rows: the peers, with the answering
// broker's own entry marked and given its store; the broker itself first
// when the topology does not list it.
func statusRows(st *bench.BrokerStatus) []clusterRow {
	var rows []clusterRow
	self := -1
	for _, p := range st.Peers {
		r := clusterRow{Node: p.NodeID, Role: p.Role, State: p.State, Epoch: p.Epoch, Address: p.URL}
		if self < 0 && p.NodeID == st.NodeID && p.Role == st.Role && (len(st.Acceptors) == 0 || slices.Contains(st.Acceptors, p.URL)) {
			self = len(rows)
			r.Self, r.Store, r.State, r.Epoch = true, st.Store, st.State, st.Epoch
		}
		rows = append(rows, r)
	}
	if self < 0 {
		addr := ""
		if len(st.Acceptors) > 0 {
			addr = st.Acceptors[0]
		}
		rows = append([]clusterRow{{Node: st.NodeID, Role: st.Role, State: st.State, Epoch: st.Epoch,
			Address: addr, Store: st.Store, Self: true}}, rows...)
	}
	return rows
}

// wireRows dials url asking for the topology (as ha=true does) and returns
// the members the broker announced.
func wireRows(ctx context.Context, rawURL string) ([]clusterRow, error) {
	u, err := client.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("--url: %w", err)
	}
	dialURL := rawURL
	if !u.HA {
		sep := "?"
		if strings.Contains(rawURL, "?") {
			sep = "&"
		}
		dialURL += sep + "ha=true&reconnectAttempts=0"
	}
	conn, err := client.Dial(ctx, dialURL, client.WithClientID("tandem-cluster-status-"+randomRunID()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	topo := conn.Topology()
	var rows []clusterRow
	for _, m := range topo.Members {
		rows = append(rows, clusterRow{Node: m.NodeID, Role: m.Role, State: m.State, Epoch: m.Epoch, Address: m.URL})
	}
	if len(rows) == 0 { // a broker that announces no topology: at least itself
		rows = append(rows, clusterRow{Node: conn.NodeID(), Role: "?", State: "?", Epoch: topo.Epoch,
			Address: "tcp://" + conn.Addr(), Self: true})
	}
	for i := range rows {
		if rows[i].Node == conn.NodeID() && strings.TrimPrefix(rows[i].Address, "tcp://") == strings.TrimPrefix(conn.Addr(), "tcp://") {
			rows[i].Self = true
		}
	}
	return rows, nil
}

// mergeRows fills the store of wire rows from status rows (same node and
// address) and adds the status rows the wire's topology lacks: a member
// that stopped answering is dropped from the topology clients learn but
// stays in /status as down. With no wire rows it returns the status rows.
func mergeRows(wire, status []clusterRow) []clusterRow {
	for _, s := range status {
		found := false
		for i := range wire {
			if s.Node == wire[i].Node && s.Address == wire[i].Address {
				found = true
				if s.Store != "" {
					wire[i].Store = s.Store
				}
			}
		}
		if !found {
			s.Self = false // the wire's broker answered
			wire = append(wire, s)
		}
	}
	return wire
}

func printClusterTable(w io.Writer, rows []clusterRow) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tSTATE\tEPOCH\tADDRESS\tSTORE\t")
	for _, r := range rows {
		store := r.Store
		if store == "" {
			store = "-"
		}
		mark := ""
		if r.Self {
			mark = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.Node, r.Role, r.State, r.Epoch, r.Address, store, mark)
	}
	tw.Flush()
	fmt.Fprintln(w, "* the broker that answered; STORE - is not reported for peers")
}
