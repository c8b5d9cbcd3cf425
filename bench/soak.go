package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemmq/tandem/client"
)

// SoakConfig describes a soak (`tandem soak`, bench/soak.sh; issue 20,
// item 4): a mixed load held for Duration at Rate messages per second,
// with a steady queue of long-lived messages among short-lived ones (a
// compaction-heavy pattern for the journal) and consumers that restart,
// reported every Interval, and ending with the checker's verdict.
type SoakConfig struct {
	URL string
	// HTTP is the broker's management address: the broker's resident
	// memory, goroutines and queue depths come from its /metrics.
	HTTP string
	// DataDir is the broker's data directory, whose size is reported.
	DataDir string
	// Duration of the load (default 5m) and the reporting Interval
	// (default 1m).
	Duration, Interval time.Duration
	// Rate is the messages per second sent in all (required): half the
	// broker's measured maximum, in bench/soak.sh.
	Rate float64
	// Producers (default 4), each sending its share of Rate with at most
	// Window sends unconfirmed (default 8); Consumers of the short-lived
	// queue (default 2); message Size in bytes (default 1024).
	Producers, Window, Consumers, Size int
	// LongEvery: every LongEvery-th message of a producer goes to the
	// long-lived queue (default 50); its consumer keeps LongHold messages
	// unacknowledged (default 5000), acknowledging the oldest as new ones
	// arrive, so that queue stays at LongHold and each of its messages
	// lives LongHold*LongEvery/Rate seconds.
	LongEvery, LongHold int
	// RestartEvery: one short-lived queue consumer restarts this often
	// (default 30s), in turn; every other restart also reconnects.
	RestartEvery time.Duration
	// DrainIdle ends the final drain when nothing was consumed for this
	// long (default 30s).
	DrainIdle time.Duration
	RunID     string
	// Report receives a row per interval (and the last, partial one).
	Report func(SoakRow)
	Logger *slog.Logger
}

// SoakRow is one interval of a soak.
type SoakRow struct {
	TimelineRow
	// DataBytes is the size of the data directory's files (-1: unknown).
	DataBytes int64 `json:"data_bytes"`
	// BrokerRSS and BrokerGoroutines come from the broker's /metrics
	// (-1: unknown); ShortDepth and LongDepth are its queues' depths.
	BrokerRSS        int64 `json:"broker_rss_bytes"`
	BrokerGoroutines int64 `json:"broker_goroutines"`
	ShortDepth       int64 `json:"short_depth"`
	LongDepth        int64 `json:"long_depth"`
	Restarts         int64 `json:"consumer_restarts"` // so far
}

// SoakResult is what a soak measured.
type SoakResult struct {
	Rows       []SoakRow `json:"rows"`
	Produced   int64     `json:"produced"`
	Consumed   int64     `json:"consumed"`
	SendFailed int64     `json:"send_failed"`
	AckFailed  int64     `json:"ack_failed"`
	Lost       int64     `json:"lost"`
	Duplicated int64     `json:"duplicated"`
	Restarts   int64     `json:"consumer_restarts"`
	SendP50us  float64   `json:"send_p50_us"`
	SendP99us  float64   `json:"send_p99_us"`
	SendP999us float64   `json:"send_p999_us"`
	SendMaxUs  float64   `json:"send_max_us"`
	Error      string    `json:"error,omitempty"`
}

// OK reports whether every acknowledged send was consumed exactly once
// and nothing failed.
func (r *SoakResult) OK() bool {
	return r.Lost == 0 && r.Duplicated == 0 && r.SendFailed == 0 && r.AckFailed == 0 && r.Error == ""
}

func (c *SoakConfig) setDefaults() {
	if c.Duration == 0 {
		c.Duration = 5 * time.Minute
	}
	if c.Interval == 0 {
		c.Interval = time.Minute
	}
	if c.Producers == 0 {
		c.Producers = 4
	}
	if c.Window == 0 {
		c.Window = 8
	}
	if c.Consumers == 0 {
		c.Consumers = 2
	}
	if c.Size == 0 {
		c.Size = 1024
	}
	if c.LongEvery == 0 {
		c.LongEvery = 50
	}
	if c.LongHold == 0 {
		c.LongHold = 5000
	}
	if c.RestartEvery == 0 {
		c.RestartEvery = 30 * time.Second
	}
	if c.DrainIdle == 0 {
		c.DrainIdle = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.RunID == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.RunID = "soak" + hex.EncodeToString(b[:])
	}
}

func (c *SoakConfig) check() error {
	switch {
	case c.URL == "":
		return errors.New("--url is required")
	case !(c.Rate > 0) || math.IsInf(c.Rate, 0):
		return errors.New("--rate must be > 0")
	case c.Duration < 0 || c.Interval <= 0:
		return errors.New("--duration and --interval must be > 0")
	case c.Producers < 1 || c.Window < 1 || c.Consumers < 1 || c.LongEvery < 2 || c.LongHold < 0:
		return errors.New("--producers, --window and --consumers must be >= 1, --long-every >= 2, --long-hold >= 0")
	case c.Size < 0:
		return errors.New("--size must be >= 0")
	case c.RestartEvery < 0 || c.DrainIdle <= 0:
		return errors.New("--restart-every must be >= 0 (0: no restarts), the drain's idle limit > 0")
	}
	if _, err := client.ParseURL(c.URL); err != nil {
		return fmt.Errorf("--url: %w", err)
	}
	return nil
}

// Destinations of a soak.
var (
	soakShort = client.Queue("soak.short")
	soakLong  = client.Queue("soak.long")
)

// soak is one Soak run.
type soak struct {
	cfg     SoakConfig
	body    []byte
	checker *Checker
	tl      *timeline
	all     Histogram

	produced, sendFailed, consumed, ackFailed, restarts atomic.Int64
	draining                                            atomic.Bool

	errMu    sync.Mutex
	firstErr error
}

func (s *soak) fail(err error) {
	s.errMu.Lock()
	if s.firstErr == nil {
		s.firstErr = err
	}
	s.errMu.Unlock()
}

func (s *soak) dial(ctx context.Context, role string, i int) (*client.Conn, error) {
	return client.Dial(ctx, s.cfg.URL, client.WithClientID(fmt.Sprintf("tandem-%s-%s%d", s.cfg.RunID, role, i+1)),
		client.WithLogger(s.cfg.Logger))
}

// Soak runs the soak cfg describes. The error is for a soak that could not
// start; failures during it are in the result (OK).
func Soak(ctx context.Context, cfg SoakConfig) (*SoakResult, error) {
	cfg.setDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	s := &soak{cfg: cfg, checker: NewChecker(true), body: make([]byte, cfg.Size)}
	for i := range s.body {
		s.body[i] = 'x'
	}
	res := &SoakResult{}

	// Connections first: a broker that does not answer is an error.
	var prodConns, consConns []*client.Conn
	closeAll := func(cs []*client.Conn) {
		for _, c := range cs {
			c.Close()
		}
	}
	defer func() { closeAll(prodConns); closeAll(consConns) }()
	for i := range cfg.Producers {
		c, err := s.dial(ctx, "p", i)
		if err != nil {
			return nil, err
		}
		prodConns = append(prodConns, c)
	}
	for i := range cfg.Consumers + 1 { // the last one takes the long-lived queue
		c, err := s.dial(ctx, "c", i)
		if err != nil {
			return nil, err
		}
		consConns = append(consConns, c)
	}
	// Each producer's sequence numbers: enough for twice its rate.
	perProducer := cfg.Rate / float64(cfg.Producers)
	n := int(perProducer*cfg.Duration.Seconds()*2) + 1000
	streams := make([]*Stream, cfg.Producers)
	for i := range streams {
		streams[i] = s.checker.Register(cfg.RunID+"."+strconv.Itoa(i+1), n)
	}

	start := time.Now()
	s.tl = newIntervalTimeline(start, cfg.Interval, func(row TimelineRow) {
		sr := SoakRow{TimelineRow: row, Restarts: s.restarts.Load()}
		sr.DataBytes = dirSize(cfg.DataDir)
		sr.BrokerRSS, sr.BrokerGoroutines, sr.ShortDepth, sr.LongDepth = brokerFigures(ctx, cfg.HTTP)
		res.Rows = append(res.Rows, sr)
		if cfg.Report != nil {
			cfg.Report(sr)
		}
	})

	cctx, stopConsumers := context.WithCancel(ctx)
	defer stopConsumers()
	var consWG sync.WaitGroup
	restart := make([]chan struct{}, cfg.Consumers)
	for i := range cfg.Consumers {
		restart[i] = make(chan struct{}, 1)
		consWG.Add(1)
		go func() {
			defer consWG.Done()
			s.shortConsumer(cctx, i, consConns[i], restart[i])
		}()
	}
	consWG.Add(1)
	go func() {
		defer consWG.Done()
		s.longConsumer(cctx, consConns[cfg.Consumers])
	}()

	pctx, stopProducers := context.WithTimeout(ctx, cfg.Duration)
	defer stopProducers()
	var prodWG sync.WaitGroup
	for i := range cfg.Producers {
		prodWG.Add(1)
		go func() {
			defer prodWG.Done()
			s.produce(pctx, prodConns[i], streams[i], start, perProducer)
		}()
	}
	prodDone := make(chan struct{})
	go func() { // ends when the producers do (they stop with pctx)
		prodWG.Wait()
		close(prodDone)
	}()

	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var nextRestart time.Time
	if cfg.RestartEvery > 0 {
		nextRestart = start.Add(cfg.RestartEvery)
	}
	who := 0
	producing := true
	var lastConsumed int64
	lastProgress := time.Now()
loop:
	for {
		select {
		case <-prodDone:
			prodDone = nil
			producing = false
			s.draining.Store(true) // the long-lived consumer lets go of what it holds
			lastProgress = time.Now()
		case <-tick.C:
		case <-ctx.Done():
			s.fail(ctx.Err())
			break loop
		}
		now := time.Now()
		s.tl.flush(now, false)
		if producing && !nextRestart.IsZero() && !now.Before(nextRestart) {
			select {
			case restart[who%cfg.Consumers] <- struct{}{}:
			default:
			}
			who++
			nextRestart = nextRestart.Add(cfg.RestartEvery)
		}
		if !producing {
			rep := s.checker.Report()
			if rep.Lost == 0 {
				break
			}
			if c := s.consumed.Load(); c != lastConsumed {
				lastConsumed, lastProgress = c, now
			} else if now.Sub(lastProgress) > cfg.DrainIdle {
				s.fail(fmt.Errorf("drain: nothing consumed for %v with %d acknowledged messages not consumed", cfg.DrainIdle, rep.Lost))
				break
			}
		}
	}
	stopProducers()
	if prodDone != nil {
		<-prodDone
	}
	stopConsumers()
	consWG.Wait()
	s.tl.flush(time.Now(), true)

	rep := s.checker.Report()
	res.Produced, res.Consumed = s.produced.Load(), rep.Consumed
	res.SendFailed, res.AckFailed = s.sendFailed.Load(), s.ackFailed.Load()
	res.Lost, res.Duplicated, res.Restarts = rep.Lost, rep.Duplicated, s.restarts.Load()
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	res.SendP50us, res.SendP99us = us(s.all.Quantile(0.5)), us(s.all.Quantile(0.99))
	res.SendP999us, res.SendMaxUs = us(s.all.Quantile(0.999)), us(s.all.Max())
	if s.firstErr != nil {
		res.Error = s.firstErr.Error()
	}
	return res, nil
}

// produce sends st's messages at perSec a second (open loop: sends are
// due at fixed times, whatever the latency; a producer that fell more than
// a second behind skips ahead rather than bursting), every LongEvery-th to
// the long-lived queue, until ctx ends; then it waits for its sends in
// flight.
func (s *soak) produce(ctx context.Context, conn *client.Conn, st *Stream, start time.Time, perSec float64) {
	sess, err := conn.CreateSession(ctx)
	if err != nil {
		s.sendFailed.Add(1)
		s.fail(fmt.Errorf("producer %s: %w", st.Prefix(), err))
		return
	}
	opts := []client.ProducerOption{client.Window(s.cfg.Window + 1), client.DuplicatePrefix(st.Prefix())}
	short, long := sess.CreateProducer(soakShort, opts...), sess.CreateProducer(soakLong, opts...)
	defer short.Close()
	defer long.Close()
	window := make(chan struct{}, s.cfg.Window)
	defer func() {
		for range s.cfg.Window { // every callback has run
			window <- struct{}{}
		}
	}()
	every := time.Duration(float64(time.Second) / perSec)
	next := start
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for seq := uint64(1); seq <= st.n; seq++ {
		now := time.Now()
		if next.After(now) {
			timer.Reset(next.Sub(now))
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		} else if now.Sub(next) > time.Second {
			next = now
		}
		next = next.Add(every)
		select {
		case window <- struct{}{}:
		case <-ctx.Done():
			return
		}
		p := short
		if seq%uint64(s.cfg.LongEvery) == 0 {
			p = long
		}
		m := &client.Message{Body: s.body, DuplicateID: st.ID(seq)}
		t0 := time.Now()
		err := p.SendAsync(context.Background(), m, func(err error) {
			defer func() { <-window }()
			if err != nil {
				s.sendFailed.Add(1)
				s.fail(fmt.Errorf("send %s: %w", m.DuplicateID, err))
				return
			}
			d := time.Since(t0)
			s.all.Record(d)
			s.tl.record(d)
			st.Acked(seq)
			s.produced.Add(1)
		})
		if err != nil {
			<-window
			s.sendFailed.Add(1)
			s.fail(fmt.Errorf("send %s: %w", m.DuplicateID, err))
			return
		}
	}
}

// acked records a consumer ack's outcome.
func (s *soak) acked(id string, err error) {
	if err != nil {
		if errors.Is(err, client.ErrStaleDelivery) {
			return // redelivered
		}
		s.ackFailed.Add(1)
		s.fail(fmt.Errorf("ack %s: %w", id, err))
		return
	}
	s.checker.Consumed(id)
	s.consumed.Add(1)
	s.tl.consumed()
}

// shortConsumer consumes the short-lived queue on conn, acknowledging
// each message, until ctx ends. On a restart signal it stops receiving,
// waits for its acks' outcomes, closes the consumer (what it received and
// did not acknowledge is redelivered), every other time reconnects, and
// starts again.
func (s *soak) shortConsumer(ctx context.Context, i int, conn *client.Conn, restart <-chan struct{}) {
	defer func() { conn.Close() }()
	for n := 0; ctx.Err() == nil; n++ {
		if n > 0 && n%2 == 0 {
			conn.Close()
			c, err := s.dial(ctx, "c", i)
			if err != nil {
				if ctx.Err() == nil {
					s.fail(fmt.Errorf("consumer %d: reconnect: %w", i+1, err))
				}
				return
			}
			conn = c
		}
		sess, err := conn.CreateSession(ctx)
		var k *client.Consumer
		if err == nil {
			k, err = sess.CreateConsumer(ctx, soakShort, client.Credit(1000))
		}
		if err != nil {
			if ctx.Err() == nil {
				s.fail(fmt.Errorf("consumer %d: %w", i+1, err))
			}
			return
		}
		rctx, stop := context.WithCancel(ctx)
		go func() { // ends with rctx
			select {
			case <-restart:
				stop()
			case <-rctx.Done():
			}
		}()
		s.receive(rctx, k, nil)
		stop()
		cl, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := k.Close(cl); err != nil && ctx.Err() == nil {
			s.fail(fmt.Errorf("consumer %d: close: %w", i+1, err))
		}
		_ = sess.Close(cl)
		cancel()
		if ctx.Err() == nil {
			s.restarts.Add(1)
		}
	}
}

// receive receives from k until ctx ends, acknowledging each message at
// once, or, with held, keeping up to LongHold of them and acknowledging
// the oldest beyond (all of them once the soak drains). It returns once
// every ack it sent has its outcome.
func (s *soak) receive(ctx context.Context, k *client.Consumer, held *[]*client.Message) {
	var inflight sync.WaitGroup
	defer inflight.Wait()
	ack := func(m *client.Message) {
		id := MessageID(m)
		inflight.Add(1)
		if err := k.AckAsync(m, func(err error) {
			defer inflight.Done()
			s.acked(id, err)
		}); err != nil {
			inflight.Done()
			s.acked(id, err)
		}
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		m, err := k.Receive(rctx)
		cancel()
		if held != nil && (s.draining.Load() || ctx.Err() != nil) {
			for _, h := range *held {
				ack(h)
			}
			*held = (*held)[:0]
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, client.ErrClosed) {
				return
			}
			if errors.Is(err, context.DeadlineExceeded) {
				continue
			}
			s.fail(fmt.Errorf("receive: %w", err))
			return
		}
		if held == nil || s.draining.Load() {
			ack(m)
			continue
		}
		*held = append(*held, m)
		for len(*held) > s.cfg.LongHold {
			ack((*held)[0])
			(*held)[0] = nil
			*held = (*held)[1:]
		}
	}
}

// longConsumer consumes the long-lived queue on conn, holding LongHold
// messages, until ctx ends.
func (s *soak) longConsumer(ctx context.Context, conn *client.Conn) {
	sess, err := conn.CreateSession(ctx)
	var k *client.Consumer
	if err == nil {
		k, err = sess.CreateConsumer(ctx, soakLong, client.Credit(s.cfg.LongHold+1000))
	}
	if err != nil {
		if ctx.Err() == nil {
			s.fail(fmt.Errorf("long-lived queue consumer: %w", err))
		}
		return
	}
	var held []*client.Message
	s.receive(ctx, k, &held)
	cl, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = k.Close(cl)
}

// dirSize returns the bytes of the files under dir (-1 when dir is empty
// or unreadable).
func dirSize(dir string) int64 {
	if dir == "" {
		return -1
	}
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file removed meanwhile
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	if err != nil {
		return -1
	}
	return n
}

// brokerFigures reads the broker's resident memory, goroutines and the
// soak queues' depths from its /metrics (-1 each when unknown).
func brokerFigures(ctx context.Context, addr string) (rss, goroutines, short, long int64) {
	rss, goroutines, short, long = -1, -1, -1, -1
	if addr == "" {
		return
	}
	u := addr
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(u, "/")+"/metrics", nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, val, ok := metricLine(line)
		if !ok {
			continue
		}
		switch {
		case name == "process_resident_memory_bytes":
			rss = val
		case name == "go_goroutines":
			goroutines = val
		case strings.HasPrefix(name, "tandem_queue_depth{") && strings.Contains(name, `queue="soak.short"`):
			short = val
		case strings.HasPrefix(name, "tandem_queue_depth{") && strings.Contains(name, `queue="soak.long"`):
			long = val
		}
	}
	if sc.Err() == nil && rss >= 0 {
		// The broker answered: a soak queue it does not list was
		// auto-deleted while empty and without consumers (a consumer
		// restart): its depth is 0.
		short, long = max(short, 0), max(long, 0)
	}
	return
}

// metricLine splits a Prometheus text line into its name (with labels)
// and its value.
func metricLine(line string) (string, int64, bool) {
	if line == "" || line[0] == '#' {
		return "", 0, false
	}
	i := strings.LastIndexByte(line, ' ')
	if i <= 0 {
		return "", 0, false
	}
	v, err := strconv.ParseFloat(line[i+1:], 64)
	if err != nil {
		return "", 0, false
	}
	return line[:i], int64(v), true
}
