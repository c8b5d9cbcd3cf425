package stomp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// ErrClientClosed is returned by a Client's operations after Close or
// once its connection ended.
var ErrClientClosed = errors.New("stomp: client closed")

// ServerError is an ERROR frame from the broker.
type ServerError struct{ Frame *Frame }

func (e *ServerError) Error() string {
	msg := "stomp: ERROR from the broker: " + e.Frame.Value("message")
	if len(e.Frame.Body) > 0 {
		msg += ": " + string(e.Frame.Body)
	}
	return msg
}

// ClientOptions configure Dial.
type ClientOptions struct {
	Login, Passcode string
	ClientID        string // client-id header (durable subscriptions)
	// HeartBeat is the CONNECT heart-beat header's (cx, cy); zero: none.
	HeartBeat [2]time.Duration
}

// Client is a minimal STOMP 1.2 client: sends with receipts (pipelined),
// subscriptions delivering to a channel, acks with receipts. It is for
// `tandem bench --protocol stomp` and tests, not a general client.
type Client struct {
	nc  net.Conn
	dec *Decoder
	// Connected is the broker's CONNECTED frame.
	Connected *Frame

	wmu  sync.Mutex // serialises writes
	wbuf []byte

	mu       sync.Mutex
	receipts map[string]func(error)
	subs     map[string]chan *Frame
	nextID   uint64
	err      error // why the connection ended
	done     chan struct{}

	closeOnce sync.Once
	closing   chan struct{} // Close or Abort began
}

// Dial connects to a broker at addr (host:port) and completes CONNECT.
func Dial(ctx context.Context, addr string, o ClientOptions) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("stomp: dial %s: %w", addr, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c := &Client{nc: nc, dec: NewDecoder(bufio.NewReaderSize(nc, 64<<10), Limits{MaxBody: 16 << 20}),
		receipts: map[string]func(error){}, subs: map[string]chan *Frame{}, done: make(chan struct{}), closing: make(chan struct{})}
	f := &Frame{Command: "CONNECT"}
	f.Set("accept-version", "1.2")
	f.Set("host", "/")
	if o.Login != "" || o.Passcode != "" {
		f.Set("login", o.Login)
		f.Set("passcode", o.Passcode)
	}
	if o.ClientID != "" {
		f.Set("client-id", o.ClientID)
	}
	f.Set("heart-beat", fmt.Sprintf("%d,%d", o.HeartBeat[0].Milliseconds(), o.HeartBeat[1].Milliseconds()))
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	if _, err := nc.Write(AppendFrame(nil, f)); err != nil {
		nc.Close()
		return nil, fmt.Errorf("stomp: CONNECT: %w", err)
	}
	for {
		r, err := c.dec.Next()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("stomp: waiting for CONNECTED: %w", err)
		}
		if r == nil {
			continue
		}
		if r.Command == "ERROR" {
			nc.Close()
			return nil, &ServerError{r}
		}
		if r.Command != "CONNECTED" {
			nc.Close()
			return nil, fmt.Errorf("stomp: got %s, want CONNECTED", r.Command)
		}
		c.Connected = r
		break
	}
	nc.SetDeadline(time.Time{})
	go c.read() // ends when the connection does
	return c, nil
}

func (c *Client) read() {
	var err error
	for {
		var f *Frame
		f, err = c.dec.Next()
		if err != nil {
			break
		}
		if f == nil {
			continue
		}
		switch f.Command {
		case "RECEIPT":
			c.mu.Lock()
			id := f.Value("receipt-id")
			done := c.receipts[id]
			delete(c.receipts, id)
			c.mu.Unlock()
			if done != nil {
				done(nil)
			}
		case "MESSAGE":
			c.mu.Lock()
			ch := c.subs[f.Value("subscription")]
			c.mu.Unlock()
			if ch != nil {
				select {
				case ch <- f:
				case <-c.closing:
				}
			}
		case "ERROR":
			err = &ServerError{f}
			c.mu.Lock()
			done := c.receipts[f.Value("receipt-id")]
			delete(c.receipts, f.Value("receipt-id"))
			c.mu.Unlock()
			if done != nil {
				done(err)
			}
		}
		if err != nil {
			break
		}
	}
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	rs := c.receipts
	c.receipts = map[string]func(error){}
	subs := c.subs
	c.subs = map[string]chan *Frame{}
	c.mu.Unlock()
	for _, done := range rs {
		done(fmt.Errorf("%w: %v", ErrClientClosed, err))
	}
	for _, ch := range subs {
		close(ch)
	}
	c.nc.Close()
	close(c.done)
}

// Err returns why the connection ended (nil while it runs).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Write sends a frame as it is.
func (c *Client) Write(f *Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = AppendFrame(c.wbuf[:0], f)
	_, err := c.nc.Write(c.wbuf)
	return err
}

// Request sends f with a receipt header; done runs with nil once its
// RECEIPT arrives, or with the error that ended the connection (an
// ERROR frame's included).
func (c *Client) Request(f *Frame, done func(error)) error {
	c.mu.Lock()
	if c.err != nil || c.receipts == nil {
		err := c.err
		c.mu.Unlock()
		return fmt.Errorf("%w: %v", ErrClientClosed, err)
	}
	select {
	case <-c.done:
		c.mu.Unlock()
		return ErrClientClosed
	default:
	}
	c.nextID++
	id := strconv.FormatUint(c.nextID, 10)
	c.receipts[id] = done
	c.mu.Unlock()
	f.Set("receipt", id)
	if err := c.Write(f); err != nil {
		c.mu.Lock()
		_, mine := c.receipts[id]
		delete(c.receipts, id)
		c.mu.Unlock()
		if mine {
			return err
		}
	}
	return nil
}

// Do is Request, waiting for the outcome.
func (c *Client) Do(ctx context.Context, f *Frame) error {
	ch := make(chan error, 1)
	if err := c.Request(f, func(err error) { ch <- err }); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SendFrame returns a SEND of body to dest with extra headers.
func SendFrame(dest string, body []byte, headers ...Header) *Frame {
	f := &Frame{Command: "SEND", Body: body}
	f.Set("destination", dest)
	f.Headers = append(f.Headers, headers...)
	return f
}

// Subscribe subscribes with the given id and ack mode; MESSAGE frames
// arrive on the returned channel (closed when the connection ends), at
// most as many as the broker's window allows ahead.
func (c *Client) Subscribe(ctx context.Context, dest, id, ack string, headers ...Header) (<-chan *Frame, error) {
	ch := make(chan *Frame, 4096)
	c.mu.Lock()
	c.subs[id] = ch
	c.mu.Unlock()
	f := &Frame{Command: "SUBSCRIBE"}
	f.Set("destination", dest)
	f.Set("id", id)
	f.Set("ack", ack)
	f.Headers = append(f.Headers, headers...)
	if err := c.Do(ctx, f); err != nil {
		return nil, err
	}
	return ch, nil
}

// Ack acknowledges m (its ack header); done runs once the broker's
// RECEIPT says the ack is durable.
func (c *Client) Ack(m *Frame, done func(error)) error {
	f := &Frame{Command: "ACK"}
	f.Set("id", m.Value("ack"))
	return c.Request(f, done)
}

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Close disconnects gracefully (DISCONNECT with a receipt, waited for at
// most until ctx ends) and closes the connection.
func (c *Client) Close(ctx context.Context) error {
	c.closeOnce.Do(func() { close(c.closing) }) // messages still arriving are dropped
	err := c.Do(ctx, &Frame{Command: "DISCONNECT"})
	c.nc.Close()
	<-c.done
	if errors.Is(err, ErrClientClosed) {
		err = nil
	}
	return err
}

// Abort closes the connection at once.
func (c *Client) Abort() {
	c.closeOnce.Do(func() { close(c.closing) })
	c.nc.Close()
	<-c.done
}
