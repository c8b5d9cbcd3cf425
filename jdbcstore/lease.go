package jdbcstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Lease is one lease row of a group held (or wanted) by this process. The
// holder ID is a random UUID per Lease. Expiry is decided by the
// database's clock (now() + expiration); this process only uses its
// monotonic clock to give up early: it counts the lease as lost once less
// than one renew period is left since the start of its last successful
// renewal, which is before the database can consider it expired.
type Lease struct {
	m      *NodeManager
	name   LockName
	holder string

	mu        sync.Mutex
	held      bool
	released  bool // Release was called: Run stops quietly
	epoch     uint64
	lastRenew time.Time // monotonic: when the last successful acquire or renew was sent
	lost      chan struct{}
	lostErr   error
}

// Lease returns a lease handle for name with a fresh holder ID.
func (m *NodeManager) Lease(name LockName) *Lease {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	holder := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	return &Lease{m: m, name: name, holder: holder, lost: make(chan struct{})}
}

// Holder returns this lease's holder ID.
func (l *Lease) Holder() string { return l.holder }

// Epoch returns the epoch the last acquisition produced (0 before).
func (l *Lease) Epoch() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.epoch
}

// Lost is closed when the lease is lost (see Run). The broker stops
// acknowledging and halts.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Err returns why the lease was lost, or nil.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lostErr
}

// SafeUntil returns the monotonic instant after which this process must no
// longer act as the holder: the start of the last successful renewal plus
// the expiration minus one renew period. Zero when not held.
func (l *Lease) SafeUntil() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held {
		return time.Time{}
	}
	return l.lastRenew.Add(l.m.opts.LockExpiration - l.m.opts.RenewPeriod)
}

// Valid reports whether the lease is held and SafeUntil is in the future.
func (l *Lease) Valid() bool {
	until := l.SafeUntil()
	return !until.IsZero() && time.Now().Before(until)
}

// TryAcquire takes the lease if it is free (no holder, or expired by the
// database's clock). Acquiring bumps the row's epoch; for the primary lock
// that epoch fences the journals.
//
// It runs one transaction: lock the row FOR UPDATE if it is free, then
// update it. The lock waits for the journal batches in flight (they hold
// the row FOR KEY SHARE), so none of them can commit after the new epoch.
// A previous holder paused in the middle of sending a batch would hold the
// row forever, so when the lock has waited longer than a grace period, the
// backends blocking it are terminated (pg_terminate_backend: the brokers'
// database role needs that right over its own sessions, which PostgreSQL
// grants by default). Only a free or expired lease is waited for, so this
// never interrupts a holder in good standing; a terminated batch fails and
// is never acknowledged.
func (l *Lease) TryAcquire(ctx context.Context) (epoch uint64, ok bool, err error) {
	start := time.Now()
	m := l.m
	m.mu.Lock()
	conn := m.connLocked(ctx)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if !conn.IsClosed() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.breakBlockers(ctx, conn.PgConn().PID(), stop)
		}()
	}
	const free = " WHERE group_name = $1 AND lock_name = $2 AND (holder IS NULL OR expiry IS NULL OR expiry < statement_timestamp())"
	var e int64
	var dbNow time.Time
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, "SELECT 1 FROM "+ident(m.table)+free+" FOR UPDATE", m.opts.Group, string(l.name)).Scan(&one); err != nil {
			return err
		}
		return tx.QueryRow(ctx, "UPDATE "+ident(m.table)+
			" SET holder = $3, expiry = statement_timestamp() + make_interval(secs => $4), epoch = epoch + 1"+free+
			" RETURNING epoch, clock_timestamp()",
			m.opts.Group, string(l.name), l.holder, m.opts.LockExpiration.Seconds()).Scan(&e, &dbNow)
	})
	end := time.Now()
	close(stop)
	wg.Wait()
	m.mu.Unlock()
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("jdbcstore: %s: acquire %s lease of group %q: %w", m.table, l.name, m.opts.Group, err)
	}
	l.mu.Lock()
	l.held, l.released, l.epoch, l.lastRenew = true, false, uint64(e), start
	l.mu.Unlock()
	m.opts.Logger.Info("jdbcstore: lease acquired", "table", m.table, "group", m.opts.Group, "lock", string(l.name), "holder", l.holder, "epoch", e)
	// Expiry is the database's business; a skewed local clock only
	// confuses people reading logs (Artemis's jdbc-allowed-time-diff).
	if skew := dbNow.Sub(start.Add(end.Sub(start) / 2)); skew > m.opts.AllowedTimeDiff+end.Sub(start) || -skew > m.opts.AllowedTimeDiff+end.Sub(start) {
		m.opts.Logger.Warn("jdbcstore: the local clock differs from the database's; leases use the database's", "skew", skew.Round(time.Millisecond), "allowed", m.opts.AllowedTimeDiff)
	}
	return uint64(e), true, nil
}

// acquireGrace is how long an acquiring UPDATE waits for the row before
// the sessions blocking it are terminated.
const acquireGrace = 500 * time.Millisecond

// breakBlockers terminates, every grace period until stop is closed, the
// backends that block backend pid.
func (l *Lease) breakBlockers(ctx context.Context, pid uint32, stop <-chan struct{}) {
	grace := acquireGrace
	if st := l.m.opts.StatementTimeout; st > 0 && st/2 < grace {
		grace = st / 2
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := connect(cctx, l.m.opts.URL, 2*time.Second, nil)
		if err == nil {
			var killed []int32
			err = conn.QueryRow(cctx, "SELECT coalesce(array_agg(b), '{}') FROM unnest(pg_blocking_pids($1)) AS b WHERE pg_terminate_backend(b)", int32(pid)).Scan(&killed)
			conn.Close(context.Background())
			if len(killed) > 0 {
				l.m.opts.Logger.Warn("jdbcstore: terminated database sessions of an expired lease holder that blocked the takeover", "lock", string(l.name), "group", l.m.opts.Group, "pids", killed)
			}
		}
		cancel()
		if err != nil {
			l.m.opts.Logger.Warn("jdbcstore: could not terminate sessions blocking the takeover", "err", err)
		}
		t.Reset(grace)
	}
}

// Acquire polls TryAcquire every poll interval until it succeeds or ctx
// ends. Database errors are logged and polled through (a backup waiting
// for the lease outlives a database restart); when ctx ends the last one
// is returned with ctx's error.
func (l *Lease) Acquire(ctx context.Context, poll time.Duration) (uint64, error) {
	var last error
	for {
		e, ok, err := l.TryAcquire(ctx)
		if ok {
			return e, nil
		}
		if err != nil && ctx.Err() == nil {
			l.m.opts.Logger.Warn("jdbcstore: lease acquisition failed; retrying", "lock", string(l.name), "group", l.m.opts.Group, "err", err)
			last = err
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			if last != nil {
				return 0, fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
			}
			return 0, ctx.Err()
		case <-t.C:
		}
	}
}

// Renew extends the lease to now() + expiration (never shortening it)
// while this holder still has it at the epoch it acquired.
func (l *Lease) Renew(ctx context.Context) error {
	start := time.Now()
	l.mu.Lock()
	held, epoch := l.held, l.epoch
	l.mu.Unlock()
	if !held {
		return fmt.Errorf("%w: %s lease is not held", ErrLeaseLost, l.name)
	}
	m := l.m
	m.mu.Lock()
	tag, err := m.connLocked(ctx).Exec(ctx, "UPDATE "+ident(m.table)+
		" SET expiry = greatest(expiry, now() + make_interval(secs => $5))"+
		" WHERE group_name = $1 AND lock_name = $2 AND holder = $3 AND epoch = $4",
		m.opts.Group, string(l.name), l.holder, int64(epoch), m.opts.LockExpiration.Seconds())
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("jdbcstore: %s: renew %s lease of group %q: %w", m.table, l.name, m.opts.Group, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("%w: %s lease of group %q is held by another node", ErrLeaseLost, l.name, m.opts.Group)
	}
	l.mu.Lock()
	l.lastRenew = start
	l.mu.Unlock()
	return nil
}

// Release gives the lease up if this holder still has it. Run then
// returns nil without closing Lost. Close the journals first: a journal
// still writing after Release is fenced only once someone else acquires.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	l.held, l.released = false, true
	l.mu.Unlock()
	m := l.m
	m.mu.Lock()
	defer m.mu.Unlock()
	_, err := m.connLocked(ctx).Exec(ctx, "UPDATE "+ident(m.table)+" SET holder = NULL, expiry = NULL WHERE group_name = $1 AND lock_name = $2 AND holder = $3",
		m.opts.Group, string(l.name), l.holder)
	if err != nil {
		return fmt.Errorf("jdbcstore: %s: release %s lease of group %q: %w", m.table, l.name, m.opts.Group, err)
	}
	return nil
}

// Run renews the lease every renew period until ctx ends (then it
// returns nil without releasing) or the lease is lost: another node has
// it, or renewals kept failing until the safe time (SafeUntil) passed.
// Then Lost is closed and Run returns the reason. Each renewal is bounded
// by the safe time, so a hung database cannot delay the halt.
func (l *Lease) Run(ctx context.Context) error {
	period := l.m.opts.RenewPeriod
	next := time.Now().Add(period)
	for {
		l.mu.Lock()
		released := l.released
		l.mu.Unlock()
		if released {
			return nil
		}
		until := l.SafeUntil()
		if until.IsZero() {
			return l.lose(fmt.Errorf("%w: %s lease is not held", ErrLeaseLost, l.name))
		}
		wait := time.Until(next)
		if d := time.Until(until); d < wait {
			wait = d
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if !time.Now().Before(until) {
			return l.lose(fmt.Errorf("%w: %s lease of group %q not renewed in time (last renewal %v ago)", ErrLeaseLost, l.name, l.m.opts.Group, time.Since(until.Add(-(l.m.opts.LockExpiration - period))).Round(time.Millisecond)))
		}
		if time.Now().Before(next) {
			continue
		}
		next = time.Now().Add(period)
		rctx, cancel := context.WithDeadline(ctx, until)
		err := l.Renew(rctx)
		cancel()
		switch {
		case err == nil:
		case errors.Is(err, ErrLeaseLost):
			return l.lose(err)
		case ctx.Err() != nil:
			return nil
		default:
			l.m.opts.Logger.Warn("jdbcstore: lease renewal failed; retrying", "lock", string(l.name), "group", l.m.opts.Group, "err", err, "safe_for", time.Until(until).Round(time.Millisecond))
			// Retry sooner than a full period.
			next = time.Now().Add(period / 4)
		}
	}
}

func (l *Lease) lose(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return nil
	}
	if l.lostErr == nil {
		l.lostErr = err
		l.held = false
		close(l.lost)
		l.m.opts.Logger.Error("jdbcstore: lease lost; stop acknowledging", "lock", string(l.name), "group", l.m.opts.Group, "err", err)
	}
	return err
}
