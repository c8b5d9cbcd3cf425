// Package cdp is a tiny Chrome DevTools Protocol client for the tests
// that drive a headless Chromium (the web console's, issue 16): launch
// the browser, attach to its page over a WebSocket, call methods and read
// events. It is the least that does this without a dependency: a
// WebSocket client of RFC 6455 (text frames, fragmentation, ping, close)
// and CDP's JSON messages.
//
// It owns the browser process and the connection's reader goroutine,
// both stopped by Close. It is for tests: it trusts the browser.
package cdp

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Browser is a headless Chromium started by Launch.
type Browser struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
	// Port is the DevTools port on 127.0.0.1.
	Port int
}

// Args are the flags Launch starts Chromium with: headless, no sandbox
// (containers, root), nothing that reaches the network by itself.
var Args = []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
	"--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
	"--disable-dev-shm-usage", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0"}

// Launch starts the browser at path with a fresh profile in dir (its log
// goes to dir/chromium.log) and waits until its DevTools port is known.
func Launch(ctx context.Context, path, dir string) (*Browser, error) {
	profile := filepath.Join(dir, "profile")
	if err := os.MkdirAll(profile, 0o755); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "chromium.log"))
	if err != nil {
		return nil, err
	}
	args := append(append([]string{}, Args...), "--user-data-dir="+profile, "about:blank")
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Close ends its helpers too
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("cdp: start %s: %w", path, err)
	}
	b := &Browser{cmd: cmd, done: make(chan struct{}), log: logf}
	go func() { cmd.Wait(); close(b.done) }()
	portFile := filepath.Join(profile, "DevToolsActivePort")
	for {
		if data, err := os.ReadFile(portFile); err == nil {
			if line, _, ok := strings.Cut(string(data), "\n"); ok {
				if p, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && p > 0 {
					b.Port = p
					return b, nil
				}
			}
		}
		select {
		case <-b.done:
			b.Close()
			return nil, fmt.Errorf("cdp: %s exited before its DevTools port was known (see %s)", path, logf.Name())
		case <-ctx.Done():
			b.Close()
			return nil, fmt.Errorf("cdp: waiting for %s: %w", portFile, ctx.Err())
		case <-time.After(20 * time.Millisecond): // the browser writes the file; nothing to wait on
		}
	}
}

// Close kills the browser (and its process group) and waits for it.
func (b *Browser) Close() {
	if b.cmd.Process != nil {
		syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-b.done
	b.log.Close()
}

// Page attaches to the browser's first page.
func (b *Browser) Page(ctx context.Context) (*Client, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://127.0.0.1:%d/json/list", b.Port), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cdp: list targets: %w", err)
	}
	defer resp.Body.Close()
	var targets []struct {
		Type string `json:"type"`
		WS   string `json:"webSocketDebuggerUrl"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&targets); err != nil {
		return nil, fmt.Errorf("cdp: list targets: %w", err)
	}
	for _, t := range targets {
		if t.Type == "page" && t.WS != "" {
			return Dial(ctx, t.WS)
		}
	}
	return nil, errors.New("cdp: the browser has no page")
}

// Event is a CDP event.
type Event struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// Error is an error answer to a call.
type Error struct {
	Method  string
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("cdp: %s: %d %s", e.Method, e.Code, e.Message) }

type message struct {
	ID     int64           `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}

// Client is a DevTools connection to one target.
type Client struct {
	nc net.Conn
	br *bufio.Reader

	wmu sync.Mutex // frames are written whole

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan message
	events  []Event
	changed chan struct{} // closed (and replaced) when an event arrives
	err     error         // why the reader stopped
	done    chan struct{} // closed when the reader stops
}

// Dial connects to a DevTools WebSocket URL (ws://host:port/path).
func Dial(ctx context.Context, wsURL string) (*Client, error) {
	u, err := url.Parse(wsURL)
	if err != nil || u.Scheme != "ws" {
		return nil, fmt.Errorf("cdp: bad WebSocket URL %q", wsURL)
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("cdp: %w", err)
	}
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	br := bufio.NewReaderSize(nc, 64<<10)
	_, err = io.WriteString(nc, req)
	var resp *http.Response
	if err == nil {
		resp, err = http.ReadResponse(br, nil)
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("cdp: WebSocket handshake: %w", err)
	}
	resp.Body.Close()
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(h[:]) {
		nc.Close()
		return nil, fmt.Errorf("cdp: WebSocket handshake: %s", resp.Status)
	}
	nc.SetDeadline(time.Time{})
	c := &Client{nc: nc, br: br, pending: map[int64]chan message{}, done: make(chan struct{}),
		changed: make(chan struct{})}
	go c.read()
	return c, nil
}

// Close closes the connection and waits for its reader.
func (c *Client) Close() error {
	err := c.nc.Close()
	<-c.done
	return err
}

// Call calls method with params and decodes its result into result
// (unless nil).
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	var raw json.RawMessage
	if params != nil {
		b, err := json.Marshal(params)
		if err != nil {
			return err
		}
		raw = b
	}
	ch := make(chan message, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return c.err
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()
	b, _ := json.Marshal(message{ID: id, Method: method, Params: raw})
	if err := c.writeFrame(0x1, b); err != nil {
		return fmt.Errorf("cdp: %s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return fmt.Errorf("cdp: %s: %w", method, c.readErr())
		}
		if m.Error != nil {
			m.Error.Method = method
			return m.Error
		}
		if result != nil {
			return json.Unmarshal(m.Result, result)
		}
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return fmt.Errorf("cdp: %s: %w", method, ctx.Err())
	}
}

func (c *Client) readErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Events returns the events received so far.
func (c *Client) Events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.events...)
}

// WaitEvent waits for an event named method among those from index from
// on (len(Events()) before the call that causes it) and returns it.
func (c *Client) WaitEvent(ctx context.Context, method string, from int) (Event, error) {
	for {
		c.mu.Lock()
		for _, ev := range c.events[min(from, len(c.events)):] {
			if ev.Method == method {
				c.mu.Unlock()
				return ev, nil
			}
		}
		from = len(c.events)
		changed, err := c.changed, c.err
		c.mu.Unlock()
		if err != nil {
			return Event{}, err
		}
		select {
		case <-changed:
		case <-c.done:
		case <-ctx.Done():
			return Event{}, fmt.Errorf("cdp: waiting for %s: %w", method, ctx.Err())
		}
	}
}

// read is the reader goroutine: it completes calls and keeps events.
func (c *Client) read() {
	defer close(c.done)
	var err error
	for {
		var b []byte
		if b, err = c.readMessage(); err != nil {
			break
		}
		var m message
		if err = json.Unmarshal(b, &m); err != nil {
			err = fmt.Errorf("cdp: bad message %.200q: %w", b, err)
			break
		}
		c.mu.Lock()
		if m.ID != 0 {
			if ch := c.pending[m.ID]; ch != nil {
				delete(c.pending, m.ID)
				ch <- m
			}
		} else if m.Method != "" {
			c.events = append(c.events, Event{Method: m.Method, Params: m.Params})
			close(c.changed)
			c.changed = make(chan struct{})
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.err = fmt.Errorf("cdp: connection ended: %w", err)
	for id, ch := range c.pending {
		close(ch)
		delete(c.pending, id)
	}
	c.mu.Unlock()
}

// readMessage reads one whole text or binary message, answering pings.
func (c *Client) readMessage() ([]byte, error) {
	var msg []byte
	for {
		var hdr [2]byte
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			return nil, err
		}
		fin, op := hdr[0]&0x80 != 0, hdr[0]&0x0f
		n := uint64(hdr[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(c.br, b[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(c.br, b[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		if n > 256<<20 {
			return nil, fmt.Errorf("WebSocket frame of %d bytes", n)
		}
		var mask [4]byte
		if hdr[1]&0x80 != 0 {
			if _, err := io.ReadFull(c.br, mask[:]); err != nil {
				return nil, err
			}
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(c.br, payload); err != nil {
			return nil, err
		}
		if hdr[1]&0x80 != 0 {
			for i := range payload {
				payload[i] ^= mask[i%4]
			}
		}
		switch op {
		case 0x0, 0x1, 0x2: // continuation, text, binary
			msg = append(msg, payload...)
			if fin {
				return msg, nil
			}
		case 0x8:
			return nil, errors.New("WebSocket closed by the browser")
		case 0x9:
			if err := c.writeFrame(0xA, payload); err != nil {
				return nil, err
			}
		case 0xA:
		default:
			return nil, fmt.Errorf("WebSocket opcode %d", op)
		}
	}
}

// writeFrame writes one masked frame (a client's frames are masked).
func (c *Client) writeFrame(op byte, payload []byte) error {
	b := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var mask [4]byte
	rand.Read(mask[:])
	b = append(b, mask[:]...)
	for i, x := range payload {
		b = append(b, x^mask[i%4])
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.nc.Write(b)
	return err
}

// Evaluate evaluates a JavaScript expression in the page, awaiting it
// when it is a promise, and decodes its value into result (unless nil).
// An exception is an error naming it.
func (c *Client) Evaluate(ctx context.Context, expr string, result any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := c.Call(ctx, "Runtime.evaluate", map[string]any{"expression": expr, "awaitPromise": true, "returnByValue": true}, &r)
	if err != nil {
		return err
	}
	if r.Exception != nil {
		return fmt.Errorf("cdp: evaluate %.80q: %s %s", expr, r.Exception.Text, r.Exception.Exception.Description)
	}
	if result != nil && len(r.Result.Value) > 0 {
		return json.Unmarshal(r.Result.Value, result)
	}
	return nil
}
