package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemmq/tandem/amqp"
	"github.com/tandemmq/tandem/client"
	"github.com/tandemmq/tandem/stomp"
)

// runner is one Run: its connections, counters and the checker.
type runner struct {
	cfg     Config
	body    []byte // shared by every send, never written after creation
	checker *Checker
	streams []*Stream
	hists   []*Histogram // one per producer

	produced   atomic.Int64 // sends acknowledged
	sendFailed atomic.Int64
	consumed   atomic.Int64 // confirmed acks counted towards target
	ackFailed  atomic.Int64
	claimed    atomic.Int64 // phase consume: messages taken to ack (at most Count are acked)
	target     atomic.Int64 // consumption is complete when consumed reaches it; 0 while unknown
	lastAck    atomic.Int64 // monotonic ns (since start) of the last confirmed ack
	wake       chan struct{}

	errMu    sync.Mutex
	firstErr error

	epoch time.Time     // reference for lastAck
	tl    *jsonTimeline // nil without Config.Timeline
}

// Run runs the benchmark cfg describes and returns what it measured. The
// error is for a run that could not start: an invalid Config, a broker
// that does not answer, or an unreachable management address. Failures
// during the run (a refused send, a lost message) are in the Result, whose
// OK method says whether the run succeeded. Canceling ctx stops the run;
// the Result then counts what happened so far.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.setDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.RunID == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		cfg.RunID = hex.EncodeToString(b[:])
	}
	var floor *Floor
	if cfg.FloorDir != "" {
		f, err := MeasureFloor(ctx, FloorOptions{Dir: cfg.FloorDir, Size: cfg.Size, Echo: cfg.FloorEcho})
		if err != nil {
			return nil, fmt.Errorf("floor: %w", err)
		}
		floor = f
	}
	r := &runner{cfg: cfg, wake: make(chan struct{}, 1), epoch: time.Now()}
	r.body = make([]byte, cfg.Size)
	for i := range r.body {
		r.body[i] = 'x'
	}
	res, err := r.run(ctx)
	if err == nil && floor != nil {
		res.Floor = floor
		if res.SendP50us != nil && floor.SumP50us > 0 {
			v := *res.SendP50us / floor.SumP50us
			res.SendP50OverFloor = &v
		}
	}
	return res, err
}

func (r *runner) now() int64 { return int64(time.Since(r.epoch)) }

// fail remembers the first error of the run.
func (r *runner) fail(err error) {
	r.errMu.Lock()
	if r.firstErr == nil {
		r.firstErr = err
	}
	r.errMu.Unlock()
}

func (r *runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *runner) dial(ctx context.Context, role string, i int) (*client.Conn, error) {
	opts := []client.Option{client.WithClientID(fmt.Sprintf("tandem-bench-%s-%s%d", r.cfg.RunID, role, i+1)),
		client.WithLogger(r.cfg.Logger)}
	if r.cfg.User != "" || r.cfg.Password != "" {
		opts = append(opts, client.WithCredentials(r.cfg.User, r.cfg.Password))
	}
	return client.Dial(ctx, r.cfg.URL, opts...)
}

// conn is one connection of a run, in the protocol it runs over.
type conn struct {
	tandem *client.Conn
	stomp  *stomp.Client
	amqp   *amqp.Client
}

func (c conn) close() {
	if c.tandem != nil {
		c.tandem.Close()
		return
	}
	if c.amqp != nil {
		c.amqp.Close()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.stomp.Close(ctx)
}

func (r *runner) connect(ctx context.Context, role string, i int) (conn, error) {
	if r.cfg.Protocol == ProtocolStomp {
		c, err := r.dialStomp(ctx)
		return conn{stomp: c}, err
	}
	if r.cfg.Protocol == ProtocolAMQP {
		c, err := r.dialAMQP(ctx)
		return conn{amqp: c}, err
	}
	c, err := r.dial(ctx, role, i)
	return conn{tandem: c}, err
}

// consumer is an open consumer in either protocol.
type consumer struct {
	tandem *client.Consumer
	c      *stomp.Client
	msgs   <-chan *stomp.Frame
	a      *amqp.Client
	amsgs  <-chan *amqp.ClientMessage
}

func (r *runner) run(ctx context.Context) (*Result, error) {
	cfg := &r.cfg
	produce := cfg.Phase != PhaseConsume
	consume := cfg.Phase != PhaseProduce
	r.checker = NewChecker(cfg.Phase == PhaseBoth)

	var conns []conn
	closeAll := func() {
		for _, c := range conns {
			c.close()
		}
	}
	defer closeAll()
	var prodConns, consConns []conn
	if produce {
		for i := range cfg.Producers {
			c, err := r.connect(ctx, "p", i)
			if err != nil {
				return nil, err
			}
			conns = append(conns, c)
			prodConns = append(prodConns, c)
			n := cfg.Count / cfg.Producers
			if i < cfg.Count%cfg.Producers {
				n++
			}
			r.streams = append(r.streams, r.checker.Register(cfg.RunID+"."+strconv.Itoa(i+1), n))
			r.hists = append(r.hists, new(Histogram))
		}
	}
	if consume {
		for i := range cfg.Consumers {
			c, err := r.connect(ctx, "c", i)
			if err != nil {
				return nil, err
			}
			conns = append(conns, c)
			consConns = append(consConns, c)
		}
	}
	var cpu0 float64
	if cfg.HTTP != "" {
		var err error
		if cpu0, err = brokerCPU(ctx, cfg.HTTP); err != nil {
			return nil, fmt.Errorf("--http: %w", err)
		}
	}

	// Consumers first: in phase both their queue must exist before the
	// first send (a topic subscription would miss earlier messages).
	cctx, cancelConsumers := context.WithCancel(ctx)
	defer cancelConsumers()
	var consWG sync.WaitGroup
	var consumers []consumer
	// A consumer gets its first credit's worth of messages as soon as it
	// exists: a drain is timed from before the consumers are created.
	consumeStart := r.now()
	for _, c := range consConns {
		var k consumer
		var err error
		if c.stomp != nil {
			k.c = c.stomp
			k.msgs, err = r.openStompConsumer(ctx, c.stomp)
		} else if c.amqp != nil {
			k.a = c.amqp
			k.amsgs, err = r.openAMQPConsumer(ctx, c.amqp)
		} else {
			k.tandem, err = r.openConsumer(ctx, c.tandem)
		}
		if err != nil {
			return nil, fmt.Errorf("consumer: %w", err)
		}
		consumers = append(consumers, k)
	}
	if cfg.Phase == PhaseConsume {
		r.target.Store(int64(cfg.Count))
	}
	start := r.now()
	r.lastAck.Store(start)
	if cfg.Timeline != nil {
		r.tl = newTimeline(cfg.Timeline, r.epoch.Add(time.Duration(start)))
	}
	for _, k := range consumers {
		consWG.Add(1)
		go func() {
			defer consWG.Done()
			if k.c != nil {
				r.consumeStomp(cctx, k.c, k.msgs)
				return
			}
			if k.a != nil {
				r.consumeAMQP(cctx, k.a, k.amsgs)
				return
			}
			r.consume(cctx, k.tandem)
		}()
	}
	var prodWG sync.WaitGroup
	for i, c := range prodConns {
		prodWG.Add(1)
		go func() {
			defer prodWG.Done()
			if c.stomp != nil {
				r.produceStomp(ctx, c.stomp, r.streams[i], r.hists[i])
				return
			}
			if c.amqp != nil {
				r.produceAMQP(ctx, c.amqp, r.streams[i], r.hists[i])
				return
			}
			r.produce(ctx, c.tandem, r.streams[i], r.hists[i])
		}()
	}
	prodDone := make(chan struct{})
	go func() { // ends when the producers end; run waits for them below
		prodWG.Wait()
		close(prodDone)
	}()

	produceEnd := start
	producing := produce
	tick := time.NewTicker(min(50*time.Millisecond, cfg.ProgressEvery))
	defer tick.Stop()
	lastProgress := time.Now()
	interrupted := false
loop:
	for {
		select {
		case <-prodDone:
			prodDone = nil
			producing = false
			produceEnd = r.now()
			if cfg.Phase == PhaseProduce {
				break loop
			}
			if cfg.Phase == PhaseConsume {
				continue
			}
			if r.produced.Load() == 0 {
				break loop // nothing to consume
			}
			r.target.Store(r.produced.Load())
		case <-r.wake:
		case <-tick.C:
		case <-ctx.Done():
			interrupted = true
			break loop
		}
		if t := r.target.Load(); t > 0 && r.consumed.Load() >= t {
			break
		}
		if consume && !producing && time.Duration(r.now()-max(r.lastAck.Load(), produceEnd)) > cfg.Idle {
			r.fail(fmt.Errorf("no message consumed for %v (--idle)", cfg.Idle))
			break
		}
		if r.tl != nil {
			r.tl.flush(time.Now(), false)
		}
		if cfg.Progress != nil && time.Since(lastProgress) >= cfg.ProgressEvery {
			lastProgress = time.Now()
			cfg.Progress(r.progress(start, false))
		}
	}
	cancelConsumers()
	if interrupted {
		r.fail(ctx.Err())
		closeAll() // completes sends and acks in flight
	}
	if !waitTimeout(&consWG, 30*time.Second) {
		closeAll()
		consWG.Wait()
	}
	if prodDone != nil {
		closeAll()
		<-prodDone
		produceEnd = r.now()
	}
	for _, k := range consumers {
		if k.tandem == nil {
			continue // closed with its connection
		}
		cl, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = k.tandem.Close(cl)
		cancel()
	}
	if cfg.Phase != PhaseConsume {
		consumeStart = start
	}
	if r.tl != nil {
		r.tl.flush(time.Now(), true)
		if r.tl.err != nil {
			r.fail(fmt.Errorf("timeline: %w", r.tl.err))
		}
	}
	res := r.result(time.Duration(produceEnd-start), time.Duration(r.lastAck.Load()-consumeStart))
	if cfg.Progress != nil {
		cfg.Progress(r.progress(start, true))
	}
	if cfg.HTTP != "" {
		cpu1, err := brokerCPU(context.Background(), cfg.HTTP)
		moved := res.Produced
		if cfg.Phase == PhaseConsume {
			moved = res.Consumed
		}
		switch {
		case err != nil:
			r.fail(fmt.Errorf("--http after the run: %w", err))
		case moved > 0:
			v := (cpu1 - cpu0) * 1e6 / float64(moved)
			res.BrokerCPUusPerMsg = &v
		}
	}
	if r.firstErr != nil {
		res.Error = r.firstErr.Error()
	}
	return res, nil
}

func (r *runner) progress(start int64, final bool) Progress {
	return Progress{Phase: r.cfg.Phase, Count: int64(r.cfg.Count), Produced: r.produced.Load(),
		Consumed: r.consumed.Load(), Elapsed: time.Duration(r.now() - start), Final: final}
}

func (r *runner) result(produceDur, consumeDur time.Duration) *Result {
	cfg := &r.cfg
	res := &Result{Phase: cfg.Phase, Protocol: cfg.Protocol, Count: cfg.Count, Producers: cfg.Producers, Window: cfg.Window,
		Consumers: cfg.Consumers, Size: cfg.Size, Durable: !cfg.NonDurable,
		Produced: r.produced.Load(), SendFailed: r.sendFailed.Load(), AckFailed: r.ackFailed.Load()}
	if cfg.Phase != PhaseConsume {
		var h Histogram
		for _, x := range r.hists {
			h.Merge(x)
		}
		if h.Count() > 0 {
			res.SendP50us, res.SendP99us = micros(h.Quantile(0.50)), micros(h.Quantile(0.99))
			res.SendP999us, res.SendMaxUs = micros(h.Quantile(0.999)), micros(h.Max())
			res.SendP9999us = micros(h.Quantile(0.9999))
		}
		res.ProduceSec = produceDur.Seconds()
		res.ProducedPerSec = perSec(res.Produced, produceDur)
	} else {
		res.Producers = 0
	}
	if cfg.Phase == PhaseProduce {
		res.Consumers = 0
		return res
	}
	rep := r.checker.Report()
	res.Consumed = rep.Consumed
	res.Foreign, res.Unacked = rep.Foreign, rep.Unacked
	if cfg.Phase == PhaseConsume {
		res.Consumed += rep.Foreign // draining counts every message
		res.Foreign = 0
	} else {
		lost := rep.Lost
		res.Lost = &lost
	}
	dup := rep.Duplicated
	res.Duplicated = &dup
	res.ConsumeSec = max(consumeDur, 0).Seconds()
	res.ConsumedPerSec = perSec(res.Consumed, max(consumeDur, 0))
	return res
}

// waitTimeout waits for wg at most d and reports whether it finished.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { // ends when wg does; callers close connections to make sure it will
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
