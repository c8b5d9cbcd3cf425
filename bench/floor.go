package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tandemmq/tandem/aio"
)

// Floor is the synchronous floor (issue 20, item 4): a producer that waits
// for each durable send cannot be answered faster than one O_DIRECT 4 KiB
// write + fdatasync on the broker's disk plus one loopback round trip
// between two processes. Both are measured, back to back, in the same
// run as the load they are compared with. The tails are reported too: a
// send's tail cannot beat the disk's.
type Floor struct {
	DiskOps    int     `json:"disk_ops"`
	DiskP50us  float64 `json:"disk_p50_us"`
	DiskP99us  float64 `json:"disk_p99_us"`
	DiskP999us float64 `json:"disk_p999_us"`
	DiskMaxUs  float64 `json:"disk_max_us"`
	RoundTrips int     `json:"round_trips"`
	RTTP50us   float64 `json:"rtt_p50_us"`
	RTTP99us   float64 `json:"rtt_p99_us"`
	RTTMaxUs   float64 `json:"rtt_max_us"`
	// SumP50us is DiskP50us + RTTP50us: the floor a synchronous send's
	// p50 is compared with.
	SumP50us float64 `json:"sum_p50_us"`
}

// FloorOptions configure MeasureFloor.
type FloorOptions struct {
	// Dir is where the disk test writes its scratch file (1 MiB, removed
	// afterwards): a directory on the broker's file system.
	Dir string
	// Size is the request's body size in the round trips (a send's
	// message body; default 1024). The request carries 64 bytes more, as
	// a Send frame's header and envelope do; the answer is 32 bytes.
	Size int
	// Echo is the command that serves the round trips in another process
	// (`tandem bench-echo`, which runs ServeEcho).
	Echo []string
	// DiskOps and RoundTrips are the numbers of operations timed
	// (defaults 2000 and 5000).
	DiskOps, RoundTrips int
}

// MeasureFloor measures the synchronous floor: the disk part first, then
// the round trips.
func MeasureFloor(ctx context.Context, o FloorOptions) (*Floor, error) {
	if o.Size <= 0 {
		o.Size = 1024
	}
	if o.DiskOps <= 0 {
		o.DiskOps = 2000
	}
	if o.RoundTrips <= 0 {
		o.RoundTrips = 5000
	}
	var disk, rtt Histogram
	if err := diskFloor(ctx, o.Dir, o.DiskOps, &disk); err != nil {
		return nil, err
	}
	if err := loopbackFloor(ctx, o.Echo, o.Size, o.RoundTrips, &rtt); err != nil {
		return nil, err
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	f := &Floor{
		DiskOps: o.DiskOps, DiskP50us: us(disk.Quantile(0.5)), DiskP99us: us(disk.Quantile(0.99)),
		DiskP999us: us(disk.Quantile(0.999)), DiskMaxUs: us(disk.Max()),
		RoundTrips: o.RoundTrips, RTTP50us: us(rtt.Quantile(0.5)), RTTP99us: us(rtt.Quantile(0.99)),
		RTTMaxUs: us(rtt.Max()),
	}
	f.SumP50us = f.DiskP50us + f.RTTP50us
	return f, nil
}

// floorBlock is the write the disk floor times: one page, as the journal's
// smallest synced batch is with O_DIRECT.
const floorBlock = 4096

// diskFloor times n O_DIRECT 4 KiB pwrites, each followed by fdatasync,
// cycling over a 1 MiB file written and synced beforehand (so that, like
// a prepared journal segment, no write changes the file's metadata).
func diskFloor(ctx context.Context, dir string, n int, h *Histogram) (err error) {
	f, err := os.CreateTemp(dir, "tandem-floor-*.tmp")
	if err != nil {
		return fmt.Errorf("disk floor: %w", err)
	}
	path := f.Name()
	defer func() {
		if rerr := os.Remove(path); rerr != nil && err == nil {
			err = fmt.Errorf("disk floor: %w", rerr)
		}
	}()
	const fileSize = 1 << 20
	if _, err := f.Write(make([]byte, fileSize)); err != nil {
		f.Close()
		return fmt.Errorf("disk floor: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("disk floor: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("disk floor: %w", err)
	}
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("disk floor: %s: the file system refuses O_DIRECT", dir)
		}
		return fmt.Errorf("disk floor: open %s: %w", path, err)
	}
	defer unix.Close(fd)
	buf := aio.AlignedBuffer(floorBlock, floorBlock)
	for i := range buf {
		buf[i] = byte(i)
	}
	for i := range n {
		if i%256 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		off := int64(i%(fileSize/floorBlock)) * floorBlock
		t0 := time.Now()
		if err := pwriteAll(fd, buf, off); err != nil {
			return fmt.Errorf("disk floor: write %s at %d: %w", path, off, err)
		}
		if err := fdatasync(fd); err != nil {
			return fmt.Errorf("disk floor: fdatasync %s: %w", path, err)
		}
		h.Record(time.Since(t0))
	}
	return nil
}

func pwriteAll(fd int, p []byte, off int64) error {
	for len(p) > 0 {
		n, err := unix.Pwrite(fd, p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

func fdatasync(fd int) error {
	for {
		if err := unix.Fdatasync(fd); err != unix.EINTR {
			return err
		}
	}
}

// Echo protocol: a frame is a 4-byte big-endian length and that many
// bytes. The echo process answers each request frame with an answer frame
// of echoAnswer bytes.
const (
	echoOverhead = 64 // request bytes beyond the body, as a Send frame has
	echoAnswer   = 32
	echoMaxFrame = 16 << 20
)

// loopbackFloor starts the echo command, connects to the address it
// prints and times n request/answer round trips (after n/10 untimed ones).
func loopbackFloor(ctx context.Context, echo []string, size, n int, h *Histogram) error {
	if len(echo) == 0 {
		return errors.New("loopback floor: no echo command")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, echo[0], echo[1:]...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1") // as the broker runs on this machine size
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("loopback floor: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("loopback floor: start %s: %w", filepath.Base(echo[0]), err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return fmt.Errorf("loopback floor: %s printed no address: %w", filepath.Base(echo[0]), err)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", strings.TrimSpace(line))
	if err != nil {
		return fmt.Errorf("loopback floor: %w", err)
	}
	defer c.Close()
	req := make([]byte, 4+size+echoOverhead)
	binary.BigEndian.PutUint32(req, uint32(size+echoOverhead))
	ans := make([]byte, 4+echoAnswer)
	for i := range n + n/10 {
		if i%256 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		t0 := time.Now()
		if _, err := c.Write(req); err != nil {
			return fmt.Errorf("loopback floor: %w", err)
		}
		if _, err := io.ReadFull(c, ans); err != nil {
			return fmt.Errorf("loopback floor: %w", err)
		}
		if i >= n/10 {
			h.Record(time.Since(t0))
		}
	}
	return nil
}

// ServeEcho is the other process of the loopback floor (`tandem
// bench-echo`): it listens on a loopback port, prints its address as one
// line to w, and answers every request frame of the one connection it
// accepts until that connection ends or ctx does.
func ServeEcho(ctx context.Context, w io.Writer) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	if _, err := fmt.Fprintln(w, ln.Addr().String()); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	context.AfterFunc(ctx, func() { c.Close() })
	r := bufio.NewReaderSize(c, 64<<10)
	ans := make([]byte, 4+echoAnswer)
	binary.BigEndian.PutUint32(ans, echoAnswer)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > echoMaxFrame {
			return fmt.Errorf("bench-echo: request frame of %d bytes", n)
		}
		if _, err := r.Discard(int(n)); err != nil {
			return err
		}
		if _, err := c.Write(ans); err != nil {
			return err
		}
	}
}
