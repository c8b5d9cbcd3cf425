package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tandemmq/tandem/client"
	"github.com/tandemmq/tandem/server"
)

// `tandem queue`, `tandem address` and `tandem connection`: management
// operations, like `artemis queue` and `artemis address`. They talk to
// the broker at --url over the wire protocol (a Manage frame), as a
// client authenticated with --user/--password (or the URL's user and
// password): the same address and credentials as a producer's, failover
// list included, and nothing to configure beside them. The operations and
// their JSON are the management HTTP API's (docs/management.md).

func init() {
	register(command{name: "queue", summary: "queue create|delete|purge|stat|browse|pause|resume|move|list (docs/cli.md)",
		run: func(args []string) int { return runQueue(args, os.Stdout, os.Stderr) }})
	register(command{name: "address", summary: "address create|delete|show|list (docs/cli.md)",
		run: func(args []string) int { return runAddress(args, os.Stdout, os.Stderr) }})
	register(command{name: "connection", summary: "connection list|consumers: open connections and consumers (docs/cli.md)",
		run: func(args []string) int { return runConnection(args, os.Stdout, os.Stderr) }})
}

// mgmtFlags are the flags every management command takes.
type mgmtFlags struct {
	url, user, password string
	json                bool
	timeout             time.Duration
}

func (m *mgmtFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.url, "url", "tcp://localhost:61616", "broker URL (a failover list with ha=true works too)")
	fs.StringVar(&m.user, "user", "", "user (default: the URL's user option, else anonymous)")
	fs.StringVar(&m.password, "password", "", "password")
	fs.BoolVar(&m.json, "json", false, "print the broker's answer as JSON")
	fs.DurationVar(&m.timeout, "timeout", 30*time.Second, "give up after this long")
}

// mgmtCmd is one run of a management command.
type mgmtCmd struct {
	name           string // "queue create"
	flags          mgmtFlags
	stdout, stderr io.Writer
}

func (c *mgmtCmd) fail(code int, err error) int {
	fmt.Fprintf(c.stderr, "tandem %s: %v\n", c.name, err)
	return code
}

// call dials, runs op and decodes its answer into out.
func (c *mgmtCmd) call(op string, args, out any) int {
	if _, err := client.ParseURL(c.flags.url); err != nil {
		return c.fail(exitCannot, fmt.Errorf("--url: %w", err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.flags.timeout)
	defer cancel()
	opts := []client.Option{client.WithClientID("tandem-" + strings.ReplaceAll(c.name, " ", "-") + "-" + randomRunID()),
		client.WithConnectRetryListener(retryNotice(c.stderr, "tandem "+c.name))}
	if c.flags.user != "" {
		opts = append(opts, client.WithCredentials(c.flags.user, c.flags.password))
	}
	conn, err := client.Dial(ctx, c.flags.url, opts...)
	if err != nil {
		return c.fail(exitCannot, err)
	}
	defer conn.Close()
	var raw json.RawMessage
	if err := conn.Manage(ctx, op, args, &raw); err != nil {
		var se *client.ServerError
		if errors.As(err, &se) {
			return c.fail(exitFailed, fmt.Errorf("%v: %s", se.Code, se.Message))
		}
		return c.fail(exitFailed, err)
	}
	if c.flags.json {
		var v any
		_ = json.Unmarshal(raw, &v)
		b, _ := json.MarshalIndent(v, "", "  ")
		fmt.Fprintln(c.stdout, string(b))
		return exitOK
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return c.fail(exitFailed, fmt.Errorf("the broker's answer: %w", err))
		}
	}
	return exitOK
}

// parse parses a subcommand's flags; a positional argument is refused.
func (c *mgmtCmd) parse(fs *flag.FlagSet, args []string) bool {
	fs.SetOutput(c.stderr)
	c.flags.register(fs)
	if err := fs.Parse(args); err != nil {
		return false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "tandem %s: unexpected arguments %q\n", c.name, fs.Args())
		return false
	}
	return true
}

func subcommand(args []string, stderr io.Writer, usage string, known ...string) (string, []string, bool) {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return "", nil, false
	}
	for _, k := range known {
		if args[0] == k {
			return k, args[1:], true
		}
	}
	fmt.Fprintf(stderr, "unknown subcommand %q\n%s\n", args[0], usage)
	return "", nil, false
}

const queueUsage = `usage: tandem queue create|delete|purge|stat|browse|pause|resume|move|list --url URL [--queue NAME] [flags]
(tandem queue SUBCOMMAND -h lists its flags; docs/cli.md)`

// runQueue is `tandem queue SUBCOMMAND`.
func runQueue(args []string, stdout, stderr io.Writer) int {
	sub, args, ok := subcommand(args, stderr, queueUsage, "create", "delete", "purge", "stat", "browse", "pause", "resume", "move", "list")
	if !ok {
		return exitCannot
	}
	c := &mgmtCmd{name: "queue " + sub, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("queue "+sub, flag.ContinueOnError)
	name := fs.String("queue", "", "the queue's name")
	var address, to, prefix string
	var anycast, multicast, durable bool
	var limit, offset, preview int
	switch sub {
	case "create":
		fs.StringVar(&address, "address", "", "the address to bind it to (default: the queue's name)")
		fs.BoolVar(&anycast, "anycast", false, "anycast routing (the default)")
		fs.BoolVar(&multicast, "multicast", false, "multicast routing (a subscription of the address)")
		fs.BoolVar(&durable, "durable", true, "durable (--durable=false: gone at restart)")
	case "browse":
		fs.IntVar(&limit, "limit", 20, "at most this many messages (at most 1000)")
		fs.IntVar(&offset, "offset", 0, "skip this many from the head")
		fs.IntVar(&preview, "preview", 256, "body bytes to show (at most 4096)")
	case "move":
		fs.StringVar(&to, "to", "", "the queue to move the messages to (required)")
		fs.IntVar(&limit, "limit", 0, "move at most this many (0: every waiting message)")
	case "stat", "list":
		fs.StringVar(&prefix, "prefix", "", "only queues whose name starts with this")
	}
	if !c.parse(fs, args) {
		return exitCannot
	}
	needName := sub != "stat" && sub != "list"
	switch {
	case needName && *name == "":
		return c.fail(exitCannot, errors.New("--queue NAME is required"))
	case anycast && multicast:
		return c.fail(exitCannot, errors.New("--anycast and --multicast exclude each other"))
	case sub == "move" && to == "":
		return c.fail(exitCannot, errors.New("--to QUEUE is required"))
	case limit < 0 || offset < 0 || preview < 0:
		return c.fail(exitCannot, errors.New("--limit, --offset and --preview must be >= 0"))
	}
	a := server.ManageArgs{Name: *name, Address: address, To: to, Limit: limit, Offset: offset, Preview: preview, Prefix: prefix}
	if multicast {
		a.Routing = "multicast"
	}
	a.Durable = &durable
	switch sub {
	case "create":
		var qi server.QueueInfo
		if code := c.call("queue.create", a, &qi); code != exitOK || c.flags.json {
			return code
		}
		fmt.Fprintf(stdout, "queue %q created on address %q (%s, durable %v)\n", qi.Name, qi.Address, qi.Routing, qi.Durable)
	case "delete", "purge", "pause", "resume":
		var res map[string]any
		if code := c.call("queue."+sub, server.ManageArgs{Name: *name}, &res); code != exitOK || c.flags.json {
			return code
		}
		switch sub {
		case "purge":
			fmt.Fprintf(stdout, "queue %q: %v message(s) purged\n", *name, res["purged"])
		default:
			fmt.Fprintf(stdout, "queue %q %sed\n", *name, strings.TrimSuffix(sub, "e"))
		}
	case "move":
		var res server.MoveResult
		if code := c.call("queue.move", a, &res); code != exitOK || c.flags.json {
			return code
		}
		fmt.Fprintf(stdout, "%d message(s) moved from %q to %q", res.Moved, *name, to)
		if res.Skipped > 0 {
			fmt.Fprintf(stdout, " (%d left: %q holds them already)", res.Skipped, to)
		}
		fmt.Fprintln(stdout)
	case "stat", "list":
		var qs []server.QueueInfo
		if *name != "" {
			var qi server.QueueInfo
			if code := c.call("queue.stat", server.ManageArgs{Name: *name}, &qi); code != exitOK || c.flags.json {
				return code
			}
			qs = []server.QueueInfo{qi}
		} else if code := c.call("queue.list", server.ManageArgs{Prefix: prefix}, &qs); code != exitOK || c.flags.json {
			return code
		}
		printQueueTable(stdout, qs)
	case "browse":
		var res server.BrowseResult
		if code := c.call("queue.browse", a, &res); code != exitOK || c.flags.json {
			return code
		}
		printBrowse(stdout, res)
	}
	return exitOK
}

func printQueueTable(w io.Writer, qs []server.QueueInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tROUTING\tDURABLE\tDEPTH\tCONSUMERS\tENQUEUED\tACKNOWLEDGED\tPAUSED\t")
	for _, q := range qs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%d\t%d\t%d\t%d\t%v\t\n", q.Name, q.Address, q.Routing, q.Durable, q.Depth,
			q.Consumers, q.Enqueued, q.Acknowledged, q.Paused)
	}
	tw.Flush()
}

func printBrowse(w io.Writer, res server.BrowseResult) {
	fmt.Fprintf(w, "queue %q: %d message(s) waiting; showing %d from %d\n", res.Queue, res.Total, len(res.Messages), res.Offset)
	for _, m := range res.Messages {
		fmt.Fprintf(w, "- id %d durable %v deliveries %d size %d", m.ID, m.Durable, m.Deliveries, m.Size)
		if m.DuplicateID != "" {
			fmt.Fprintf(w, " duplicate-id %q", m.DuplicateID)
		}
		if m.Timestamp != "" {
			fmt.Fprintf(w, " at %s", m.Timestamp)
		}
		fmt.Fprintln(w)
		if len(m.Properties) > 0 {
			b, _ := json.Marshal(m.Properties)
			fmt.Fprintf(w, "  properties %s\n", b)
		}
		kind := "text"
		if !m.BodyText {
			kind = "hex"
		}
		fmt.Fprintf(w, "  body (%s) %q\n", kind, m.Body)
	}
}

const addressUsage = `usage: tandem address create|delete|show|list --url URL [--name NAME] [--anycast|--multicast]
(tandem address SUBCOMMAND -h lists its flags; docs/cli.md)`

// runAddress is `tandem address SUBCOMMAND`.
func runAddress(args []string, stdout, stderr io.Writer) int {
	sub, args, ok := subcommand(args, stderr, addressUsage, "create", "delete", "show", "list")
	if !ok {
		return exitCannot
	}
	c := &mgmtCmd{name: "address " + sub, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("address "+sub, flag.ContinueOnError)
	name := fs.String("name", "", "the address's name")
	var anycast, multicast bool
	if sub == "create" {
		fs.BoolVar(&anycast, "anycast", false, "anycast routing (the default)")
		fs.BoolVar(&multicast, "multicast", false, "multicast routing")
	}
	if !c.parse(fs, args) {
		return exitCannot
	}
	switch {
	case sub != "list" && *name == "":
		return c.fail(exitCannot, errors.New("--name NAME is required"))
	case anycast && multicast:
		return c.fail(exitCannot, errors.New("--anycast and --multicast exclude each other (run create twice for both)"))
	}
	a := server.ManageArgs{Name: *name}
	if multicast {
		a.Routing = "multicast"
	}
	switch sub {
	case "create", "show":
		var ai server.AddressInfo
		if code := c.call("address."+sub, a, &ai); code != exitOK || c.flags.json {
			return code
		}
		printAddresses(stdout, []server.AddressInfo{ai})
	case "delete":
		if code := c.call("address.delete", a, nil); code != exitOK || c.flags.json {
			return code
		}
		fmt.Fprintf(stdout, "address %q deleted\n", *name)
	case "list":
		var as []server.AddressInfo
		if code := c.call("address.list", nil, &as); code != exitOK || c.flags.json {
			return code
		}
		printAddresses(stdout, as)
	}
	return exitOK
}

func printAddresses(w io.Writer, as []server.AddressInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROUTING\tQUEUES\tAUTO-CREATED\t")
	for _, a := range as {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t\n", a.Name, strings.Join(a.Routing, ","), strings.Join(a.Queues, ","), a.AutoCreated)
	}
	tw.Flush()
}

const connectionUsage = `usage: tandem connection list|consumers --url URL [--json]`

// runConnection is `tandem connection list|consumers`.
func runConnection(args []string, stdout, stderr io.Writer) int {
	sub, args, ok := subcommand(args, stderr, connectionUsage, "list", "consumers")
	if !ok {
		return exitCannot
	}
	c := &mgmtCmd{name: "connection " + sub, stdout: stdout, stderr: stderr}
	if !c.parse(flag.NewFlagSet("connection "+sub, flag.ContinueOnError), args) {
		return exitCannot
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	if sub == "list" {
		var cs []server.ConnectionInfo
		if code := c.call("connection.list", nil, &cs); code != exitOK || c.flags.json {
			return code
		}
		fmt.Fprintln(tw, "ID\tREMOTE\tACCEPTOR\tPROTOCOL\tUSER\tCLIENT\tSINCE\t")
		for _, x := range cs {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", x.ID, x.Remote, x.Acceptor, x.Protocol, x.User, x.ClientID, x.Since)
		}
		return exitOK
	}
	var cs []server.ConsumerInfo
	if code := c.call("consumer.list", nil, &cs); code != exitOK || c.flags.json {
		return code
	}
	fmt.Fprintln(tw, "QUEUE\tADDRESS\tCONNECTION\tCONSUMER\tCREDIT\tDELIVERING\t")
	for _, x := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t\n", x.Queue, x.Address, x.Connection, x.ID, x.Credit, x.Delivering)
	}
	return exitOK
}
