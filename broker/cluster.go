package broker

// The source side of a cluster connection (issue 19): this broker dials
// another live broker's acceptor with the cluster credentials
// (wire.ClusterClientID), joins under its node ID and epoch, and moves
// messages to it in frames it answers once they are durable
// (wire/cluster.go, server/cluster.go). One request at a time: each
// answer is awaited (with pings answered) before the next frame.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/tlsconfig"
	"github.com/tandemmq/tandem/wire"
)

// clusterRequestTimeout bounds one cluster request: the target stores a
// batch (about a MiB) with one fsync.
const clusterRequestTimeout = 60 * time.Second

// clusterConn is a joined cluster connection to one target.
type clusterConn struct {
	addr   string // host:port dialled
	nc     net.Conn
	dec    *wire.Decoder
	corr   uint64
	joined wire.ClusterJoined // the target's answer to ClusterJoin
}

// errClusterRefused is a target's definite refusal: nothing of the
// request was stored.
var errClusterRefused = errors.New("refused by the target")

// dialCluster connects to addr, says Hello as a cluster connection and
// joins as node (with epoch) for stream. A target that answers the join
// with an error is returned as an error wrapping errClusterRefused.
func dialCluster(ctx context.Context, cfg *config.Config, addr, node string, epoch uint64, stream string) (*clusterConn, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	nc, err := dialPeer(dctx, cfg, addr)
	if err != nil {
		return nil, err
	}
	c := &clusterConn{addr: addr, nc: nc, dec: wire.NewDecoder(nc)}
	fail := func(err error) (*clusterConn, error) {
		nc.Close()
		return nil, fmt.Errorf("cluster connection to %s: %w", addr, err)
	}
	hello := &wire.Hello{MinVersion: wire.MinVersion, MaxVersion: wire.Version, ClientID: wire.ClusterClientID,
		User: cfg.ClusterUser, Password: cfg.ClusterPassword, ConnectionTTL: uint32(2 * clusterRequestTimeout / time.Millisecond)}
	f, err := c.call(dctx, hello)
	if err != nil {
		return fail(err)
	}
	switch f := f.(type) {
	case *wire.Welcome:
	case *wire.Error:
		return fail(fmt.Errorf("%w: %v: %s", errClusterRefused, f.Code, f.Message))
	default:
		return fail(fmt.Errorf("got %v, want Welcome", f.Type()))
	}
	f, err = c.call(dctx, &wire.ClusterJoin{NodeID: node, Name: cfg.Name, Epoch: epoch, Stream: stream})
	if err != nil {
		return fail(err)
	}
	j, ok := f.(*wire.ClusterJoined)
	if !ok {
		return fail(fmt.Errorf("got %v, want ClusterJoined", f.Type()))
	}
	if j.Code != wire.CodeOK {
		return fail(fmt.Errorf("%w: %v: %s", errClusterRefused, j.Code, j.Message))
	}
	c.joined = *j
	return c, nil
}

// dialPeer connects to another broker of the cluster at addr, over TLS
// when the connector to it (or the cluster connection's) says so, as the
// cluster probes do (security.go's peerTLS).
func dialPeer(ctx context.Context, cfg *config.Config, addr string) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc, err := peerTLS(cfg, addr)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if tc == nil {
		return nc, nil
	}
	host, _, _ := net.SplitHostPort(addr)
	t := tls.Client(nc, tlsconfig.ForHost(tc, host))
	if err := t.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	return t, nil
}

// call sends f and returns the answer with its correlation ID (Pings on
// the way are answered; Topology frames ignored).
func (c *clusterConn) call(ctx context.Context, f wire.Frame) (wire.Frame, error) {
	c.corr++
	corr := c.corr
	dl := time.Now().Add(clusterRequestTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = c.nc.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Now()) })
	defer stop()
	b, err := wire.AppendFrame(nil, corr, f)
	if err != nil {
		return nil, err
	}
	if _, err := c.nc.Write(b); err != nil {
		return nil, err
	}
	for {
		h, fr, err := c.dec.Read()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		switch x := fr.(type) {
		case *wire.Ping:
			pb, _ := wire.AppendFrame(nil, h.Corr, &wire.Pong{})
			if _, err := c.nc.Write(pb); err != nil {
				return nil, err
			}
			continue
		case *wire.Pong, *wire.Topology:
			continue
		case *wire.Error:
			return x, nil // the connection ends after it
		case *wire.Disconnect:
			return nil, fmt.Errorf("%w: the target disconnects: %v: %s", errClusterRefused, x.Code, x.Message)
		}
		if h.Corr != corr && f.Type() != wire.TypeHello {
			return nil, fmt.Errorf("answer %v with corr %d, want %d", fr.Type(), h.Corr, corr)
		}
		return fr, nil
	}
}

// send sends a ClusterMessages or ClusterDupIDs frame and waits for its
// ClusterAck: nil once durable on the target; an error wrapping
// errClusterRefused when the target stored nothing of it; any other
// error leaves the outcome unknown.
func (c *clusterConn) send(ctx context.Context, f wire.Frame) (*wire.ClusterAck, error) {
	fr, err := c.call(ctx, f)
	if err != nil {
		return nil, err
	}
	switch a := fr.(type) {
	case *wire.ClusterAck:
		if a.Code != wire.CodeOK {
			return a, fmt.Errorf("%w: %v: %s", errClusterRefused, a.Code, a.Message)
		}
		return a, nil
	case *wire.Error:
		return nil, fmt.Errorf("the target closed the connection: %v: %s", a.Code, a.Message)
	}
	return nil, fmt.Errorf("got %v, want ClusterAck", fr.Type())
}

func (c *clusterConn) close() { c.nc.Close() }
