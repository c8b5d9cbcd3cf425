package lockfile

import (
	"fmt"
	"sync"
	"time"
)

// Monitor is the live broker's lease on the primary lock. It verifies
// (Manager.Verify) every CheckInterval on its own goroutine. CanAck is true
// only while the last good verification started less than Lease ago; the
// first error, or a verification still unfinished when the lease runs out,
// closes Lost for good.
type Monitor struct {
	m        *Manager
	epoch    uint64
	lease    time.Duration
	interval time.Duration
	report   func(Verification, error)

	mu       sync.Mutex
	lastGood time.Time // start of the last good verification (monotonic)
	last     Verification
	err      error
	lost     chan struct{}

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// StartMonitor verifies once (returning that error, if any) and then keeps
// verifying on a goroutine until Stop or the first failure. report, if not
// nil, is called from the monitor goroutine after every verification (err
// is nil for a good one); it must not block for long.
func (m *Manager) StartMonitor(epoch uint64, report func(Verification, error)) (*Monitor, error) {
	v, err := m.Verify(epoch)
	if err != nil {
		return nil, err
	}
	mo := &Monitor{
		m: m, epoch: epoch, lease: m.opts.Lease, interval: m.opts.CheckInterval, report: report,
		lastGood: v.Start, last: v,
		lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go mo.run()
	return mo, nil
}

// Epoch returns the epoch the monitor verifies.
func (mo *Monitor) Epoch() uint64 { return mo.epoch }

// CanAck reports whether the live may acknowledge at now (time.Now(): the
// comparison uses the monotonic clock): not lost, and the last good
// verification started less than one lease before now.
func (mo *Monitor) CanAck(now time.Time) bool {
	mo.mu.Lock()
	defer mo.mu.Unlock()
	return mo.err == nil && now.Sub(mo.lastGood) < mo.lease
}

// Last returns the last good verification.
func (mo *Monitor) Last() Verification {
	mo.mu.Lock()
	defer mo.mu.Unlock()
	return mo.last
}

// Lost is closed when the lock is lost; Err then says why.
func (mo *Monitor) Lost() <-chan struct{} { return mo.lost }

// Err returns why the lock was lost, or nil.
func (mo *Monitor) Err() error {
	mo.mu.Lock()
	defer mo.mu.Unlock()
	return mo.err
}

// Stop ends the monitor and waits for its goroutine. It does not release
// the lock. After Stop, CanAck is false.
func (mo *Monitor) Stop() {
	mo.stopOnce.Do(func() { close(mo.stop) })
	<-mo.done
	mo.mu.Lock()
	mo.lastGood = time.Time{}
	mo.mu.Unlock()
}

func (mo *Monitor) fail(err error) {
	mo.mu.Lock()
	if mo.err == nil {
		mo.err = err
		close(mo.lost)
	}
	mo.mu.Unlock()
	if mo.report != nil {
		mo.report(Verification{}, err)
	}
}

func (mo *Monitor) run() {
	defer close(mo.done)
	tick := time.NewTicker(mo.interval)
	defer tick.Stop()
	// One verification at a time. A verification blocked in the kernel (a
	// hard NFS mount) cannot be interrupted; its goroutine finishes when the
	// system call returns and its result is then dropped (buffered channel).
	for {
		select {
		case <-mo.stop:
			return
		case <-tick.C:
		}
		res := make(chan result, 1)
		go func() {
			v, err := mo.m.Verify(mo.epoch)
			res <- result{v, err}
		}()
		mo.mu.Lock()
		deadline := mo.lastGood.Add(mo.lease)
		mo.mu.Unlock()
		expire := time.NewTimer(time.Until(deadline))
		select {
		case <-mo.stop:
			expire.Stop()
			return
		case <-expire.C:
			mo.fail(fmt.Errorf("%w: last good verification at %v, lease %v", ErrLeaseExpired, deadline.Add(-mo.lease).Format(time.RFC3339Nano), mo.lease))
			return
		case r := <-res:
			expire.Stop()
			if r.err != nil {
				mo.fail(r.err)
				return
			}
			mo.mu.Lock()
			mo.lastGood, mo.last = r.v.Start, r.v
			mo.mu.Unlock()
			if mo.report != nil {
				mo.report(r.v, nil)
			}
		}
	}
}

type result struct {
	v   Verification
	err error
}
