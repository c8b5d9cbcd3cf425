package replication

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/tandemmq/tandem/wire"
)

// fconn is one side of a replication connection: frames in, frames out.
// Reads are for one goroutine; send is safe for concurrent use.
type fconn struct {
	nc  net.Conn
	dec *wire.Decoder

	wmu          sync.Mutex
	enc          wire.Encoder
	writeTimeout time.Duration
}

func newFconn(nc net.Conn, r io.Reader, writeTimeout time.Duration) *fconn {
	if r == nil {
		r = nc
	}
	return &fconn{nc: nc, dec: wire.NewDecoder(r), writeTimeout: writeTimeout}
}

// send writes one frame, giving up (and failing the connection) when the
// peer does not take it within the write timeout.
func (c *fconn) send(corr uint64, f wire.Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.enc.Reset()
	if err := c.enc.Encode(corr, f); err != nil {
		return err
	}
	if c.writeTimeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	if _, err := c.nc.Write(c.enc.Bytes()); err != nil {
		return fmt.Errorf("replication: send %v: %w", f.Type(), err)
	}
	return nil
}

// read returns the next frame (valid until the next read).
func (c *fconn) read(deadline time.Duration) (wire.Header, wire.Frame, error) {
	if deadline > 0 {
		c.nc.SetReadDeadline(time.Now().Add(deadline))
	}
	return c.dec.Read()
}

// expect reads the next frame and requires type t (an Error frame is
// returned as a *RemoteError).
func (c *fconn) expect(t wire.Type, deadline time.Duration) (wire.Header, wire.Frame, error) {
	h, f, err := c.read(deadline)
	if err != nil {
		return h, nil, err
	}
	if e, ok := f.(*wire.Error); ok {
		return h, nil, &RemoteError{Code: e.Code, Message: e.Message}
	}
	if h.Type != t {
		return h, nil, fmt.Errorf("replication: got %v, want %v", h.Type, t)
	}
	return h, f, nil
}

func (c *fconn) close() { c.nc.Close() }

// RemoteError is an Error frame from the other side.
type RemoteError struct {
	Code    wire.Code
	Message string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("replication: refused by the live (%v): %s", e.Code, e.Message)
}
