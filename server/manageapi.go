package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/tandemmq/tandem/auth"
	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/wire"
)

// ManageArgs are the arguments of every management operation (JSON; each
// operation reads the fields it needs, docs/management.md).
type ManageArgs struct {
	Name    string `json:"name,omitempty"`    // the queue or address
	Address string `json:"address,omitempty"` // queue.create: its address ("" = name)
	Routing string `json:"routing,omitempty"` // "anycast" (default) or "multicast"
	Durable *bool  `json:"durable,omitempty"` // queue.create: default true
	To      string `json:"to,omitempty"`      // queue.move: the target queue
	Limit   int    `json:"limit,omitempty"`   // queue.move, queue.browse
	Offset  int    `json:"offset,omitempty"`  // queue.browse
	Preview int    `json:"preview,omitempty"` // queue.browse: body bytes
	Prefix  string `json:"prefix,omitempty"`  // queue.list
}

// BrowseResult is what queue.browse returns.
type BrowseResult struct {
	Queue    string           `json:"queue"`
	Total    int              `json:"total"` // messages waiting
	Offset   int              `json:"offset"`
	Messages []BrowsedMessage `json:"messages"`
}

// manageOps are the operations Manage knows; read-only ones change
// nothing and need no authentication over HTTP.
var manageOps = map[string]bool{
	"address.list": true, "address.show": true, "address.create": false, "address.delete": false,
	"queue.list": true, "queue.stat": true, "queue.create": false, "queue.delete": false,
	"queue.purge": false, "queue.pause": false, "queue.resume": false, "queue.browse": true,
	"queue.move": false, "connection.list": true, "consumer.list": true,
}

// ManageReadOnly reports whether op is a known operation that changes
// nothing.
func ManageReadOnly(op string) bool { return manageOps[op] }

// parseRouting reads a routing name ("" = anycast).
func parseRouting(s string) (Routing, error) {
	switch strings.ToLower(s) {
	case "", "anycast":
		return Anycast, nil
	case "multicast":
		return Multicast, nil
	}
	return 0, fmt.Errorf("%w: routing %q: want anycast or multicast", ErrInvalid, s)
}

// Manage runs one management operation and returns its result (to be
// encoded as JSON). It is what the management HTTP API, the console and
// the wire protocol's Manage frame (the CLI's `tandem queue|address`)
// call.
func (s *Server) Manage(ctx context.Context, op string, a ManageArgs) (any, error) {
	readOnly, ok := manageOps[op]
	if !ok {
		return nil, fmt.Errorf("%w: unknown operation %q", ErrInvalid, op)
	}
	if err := s.authorizeManage(ctx, op, a); err != nil {
		return nil, err
	}
	// Authorized as a whole: its parts (an address a queue.create makes)
	// are not checked again.
	ctx = asBroker(ctx)
	if !readOnly {
		if err := s.enter(); err != nil {
			return nil, err
		}
		defer s.exit()
	}
	needName := func() error {
		if a.Name == "" {
			return fmt.Errorf("%w: %s needs a name", ErrInvalid, op)
		}
		return nil
	}
	switch op {
	case "address.list":
		return s.Addresses(), nil
	case "queue.list":
		qs, _ := s.ListQueues(QueueQuery{All: true, Prefix: a.Prefix})
		return qs, nil
	case "connection.list":
		return s.Connections(), nil
	case "consumer.list":
		return s.Consumers(), nil
	}
	if err := needName(); err != nil {
		return nil, err
	}
	switch op {
	case "address.show":
		ai, ok := s.Address(a.Name)
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrNoSuchAddress, a.Name)
		}
		return ai, nil
	case "address.create":
		r, err := parseRouting(a.Routing)
		if err != nil {
			return nil, err
		}
		if err := s.CreateAddress(ctx, a.Name, r); err != nil {
			return nil, err
		}
		ai, _ := s.Address(a.Name)
		return ai, nil
	case "address.delete":
		return map[string]string{"deleted": a.Name}, s.DeleteAddress(ctx, a.Name)
	case "queue.stat":
		qi, ok := s.Queue(a.Name)
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrNoSuchQueue, a.Name)
		}
		return qi, nil
	case "queue.create":
		r, err := parseRouting(a.Routing)
		if err != nil {
			return nil, err
		}
		durable := a.Durable == nil || *a.Durable
		if _, err := s.createQueueAnswer(ctx, QueueConfig{Address: a.Address, Name: a.Name, Routing: r, Durable: durable}); err != nil {
			return nil, err
		}
		qi, _ := s.Queue(a.Name)
		return qi, nil
	case "queue.delete":
		return map[string]string{"deleted": a.Name}, s.confirmed(s.deleteQueueNamed(ctx, a.Name))
	case "queue.purge":
		n, err := s.PurgeQueue(ctx, a.Name)
		return map[string]int{"purged": n}, err
	case "queue.pause", "queue.resume":
		if err := s.setPaused(ctx, a.Name, op == "queue.pause"); err != nil {
			return nil, err
		}
		qi, _ := s.Queue(a.Name)
		return qi, nil
	case "queue.browse":
		ms, total, err := s.Browse(a.Name, BrowseOptions{Offset: a.Offset, Limit: a.Limit, Preview: a.Preview})
		if err != nil {
			return nil, err
		}
		return BrowseResult{Queue: a.Name, Total: total, Offset: a.Offset, Messages: ms}, nil
	case "queue.move":
		if a.To == "" {
			return nil, fmt.Errorf("%w: queue.move needs to (the target queue)", ErrInvalid)
		}
		return s.MoveMessages(ctx, a.Name, a.To, a.Limit)
	}
	return nil, fmt.Errorf("%w: unknown operation %q", ErrInvalid, op)
}

// authorizeManage checks the permission an operation needs (docs/security.md):
// creating and deleting queues and addresses need the permissions a
// client's would, browsing needs browse, purge, pause, resume and move
// need manage (on both queues' addresses for a move); listing and showing
// need no more than the login. A queue that does not exist is left to the
// operation to report.
func (s *Server) authorizeManage(ctx context.Context, op string, a ManageArgs) error {
	queueAddr := func(name string) (string, bool, bool) {
		s.mu.RLock()
		q := s.queues[name]
		s.mu.RUnlock()
		if q == nil {
			return "", false, false
		}
		return q.addr.name, q.durable, true
	}
	onQueue := func(p auth.Permission) error {
		if addr, _, ok := queueAddr(a.Name); ok {
			return authorize(ctx, p, addr)
		}
		return nil
	}
	switch op {
	case "queue.create":
		addr := a.Address
		if addr == "" {
			addr = a.Name
		}
		if err := authorize(ctx, queuePermission(a.Durable == nil || *a.Durable, true), addr); err != nil {
			return err
		}
		if s.lookupAddress(addr) == nil {
			return authorize(ctx, auth.CreateAddress, addr)
		}
	case "queue.delete":
		if addr, durable, ok := queueAddr(a.Name); ok {
			return authorize(ctx, queuePermission(durable, false), addr)
		}
	case "queue.purge", "queue.pause", "queue.resume":
		return onQueue(auth.Manage)
	case "queue.move":
		if err := onQueue(auth.Manage); err != nil {
			return err
		}
		if addr, _, ok := queueAddr(a.To); ok {
			return authorize(ctx, auth.Manage, addr)
		}
	case "queue.browse":
		return onQueue(auth.Browse)
	case "address.create":
		return authorize(ctx, auth.CreateAddress, a.Name)
	case "address.delete":
		return authorize(ctx, auth.DeleteAddress, a.Name)
	}
	return nil
}

// manageCode maps a management error to a wire code.
func manageCode(err error) wire.Code {
	switch {
	case errors.Is(err, ErrNoSuchAddress):
		return wire.CodeNotFound
	case errors.Is(err, ErrAddressInUse), errors.Is(err, ErrInvalid):
		return wire.CodeInvalid
	}
	return codeOf(err)
}

// manageStatus maps a management error to an HTTP status.
func manageStatus(err error) int {
	switch manageCode(err) {
	case wire.CodeNotFound:
		return http.StatusNotFound
	case wire.CodeExists, wire.CodeLimit:
		return http.StatusConflict
	case wire.CodeInvalid:
		if errors.Is(err, ErrQueueInUse) || errors.Is(err, ErrAddressInUse) {
			return http.StatusConflict
		}
		return http.StatusBadRequest
	case wire.CodeUnavailable, wire.CodeShuttingDown:
		return http.StatusServiceUnavailable
	case wire.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case wire.CodeForbidden:
		return http.StatusForbidden
	case wire.CodeAuthFailed:
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError
}

// handleManage answers a Manage frame: the connection is authenticated
// like any client's. It runs on the connection's reader, as CreateQueue
// and DeleteQueue do.
func (c *conn) handleManage(corr uint64, f *wire.Manage) {
	var a ManageArgs
	if len(f.Args) > 0 {
		if err := json.Unmarshal(f.Args, &a); err != nil {
			c.out.frame(corr, &wire.ManageResult{Code: wire.CodeInvalid, Message: fmt.Sprintf("%s: arguments: %v", f.Op, err)})
			return
		}
	}
	res, err := c.s.Manage(c.ctx, f.Op, a)
	if err != nil {
		c.out.frame(corr, &wire.ManageResult{Code: manageCode(err), Message: err.Error()})
		return
	}
	body, err := json.Marshal(res)
	if err == nil && len(body) > wire.MaxManageBody {
		err = fmt.Errorf("%w: the answer has %d bytes of JSON, more than a frame holds (%d): ask for fewer (limit)", journal.ErrTooLarge, len(body), wire.MaxManageBody)
	}
	if err != nil {
		c.out.frame(corr, &wire.ManageResult{Code: manageCode(err), Message: err.Error()})
		return
	}
	c.out.frame(corr, &wire.ManageResult{Code: wire.CodeOK, Body: body})
}
