package bench

import (
	"bufio"
	"encoding/json"
	"io"
	"sync/atomic"
	"time"
)

// TimelineRow is one second of a run (`tandem bench --timeline FILE`
// writes one per line, as JSON): what was acknowledged in that second and
// the latencies of the sends acknowledged in it. A stall shows up as a
// second with a large send_max_us and few sends.
type TimelineRow struct {
	// T is the end of the interval in seconds since the run started; the
	// interval is [T-Seconds, T).
	T       float64 `json:"t"`
	Seconds float64 `json:"seconds"` // 1 except for the last, partial row
	// Produced and Consumed count sends acknowledged and acks confirmed
	// in the interval; ProducedPerSec and ConsumedPerSec divide them by
	// Seconds.
	Produced       int64    `json:"produced"`
	Consumed       int64    `json:"consumed"`
	ProducedPerSec float64  `json:"produced_per_sec"`
	ConsumedPerSec float64  `json:"consumed_per_sec"`
	SendP50us      *float64 `json:"send_p50_us"` // null when nothing was acknowledged in the interval
	SendP99us      *float64 `json:"send_p99_us"`
	SendP999us     *float64 `json:"send_p999_us"`
	SendMaxUs      *float64 `json:"send_max_us"`
}

// timelineSlots is the ring of per-interval slots: interval k is recorded
// into slot k%timelineSlots and written out once interval k has ended and
// a grace (an interval, at most a second) has passed, so a slot is reset
// long after the last record into it and long before it is reused.
const timelineSlots = 4

// timeline collects per-interval figures (a second for --timeline, a
// minute for the soak) and emits one TimelineRow per interval. record and
// consumed are safe for concurrent use; flush is called from one
// goroutine, often enough that a slot is emitted before it is reused (the
// run loop calls it every 50 ms).
type timeline struct {
	emit     func(TimelineRow)
	epoch    time.Time
	interval time.Duration
	grace    time.Duration
	slots    [timelineSlots]timelineSlot
	next     int64 // next interval to emit
}

type timelineSlot struct {
	h        Histogram
	consumed atomic.Int64
}

// newIntervalTimeline returns a timeline of intervals of d from epoch on.
func newIntervalTimeline(epoch time.Time, d time.Duration, emit func(TimelineRow)) *timeline {
	return &timeline{emit: emit, epoch: epoch, interval: d, grace: min(d, time.Second)}
}

// jsonTimeline is --timeline: a row per second written to w as a JSON
// line; err reports the first write error.
type jsonTimeline struct {
	*timeline
	w   *bufio.Writer
	err error
}

func newTimeline(w io.Writer, epoch time.Time) *jsonTimeline {
	t := &jsonTimeline{w: bufio.NewWriter(w)}
	t.timeline = newIntervalTimeline(epoch, time.Second, func(row TimelineRow) {
		b, _ := json.Marshal(&row)
		b = append(b, '\n')
		if _, err := t.w.Write(b); err != nil && t.err == nil {
			t.err = err
		}
	})
	return t
}

// flush emits the rows due and flushes the writer.
func (t *jsonTimeline) flush(now time.Time, final bool) {
	t.timeline.flush(now, final)
	if err := t.w.Flush(); err != nil && t.err == nil {
		t.err = err
	}
}

func (t *timeline) index(now time.Time) int64 { return int64(now.Sub(t.epoch) / t.interval) }

// record counts a send acknowledged now after d.
func (t *timeline) record(d time.Duration) { t.recordAt(time.Now(), d) }

func (t *timeline) recordAt(now time.Time, d time.Duration) {
	t.slots[t.index(now)%timelineSlots].h.Record(d)
}

// consumed counts an ack confirmed now.
func (t *timeline) consumed() { t.consumedAt(time.Now()) }

func (t *timeline) consumedAt(now time.Time) {
	t.slots[t.index(now)%timelineSlots].consumed.Add(1)
}

// flush emits the rows of the intervals that can no longer receive
// records; with final, every row up to now, the last one partial.
func (t *timeline) flush(now time.Time, final bool) {
	cur := t.index(now)
	last := t.index(now.Add(-t.grace)) - 1
	if final {
		last = cur
	}
	for ; t.next <= last; t.next++ {
		sl := &t.slots[t.next%timelineSlots]
		secs := t.interval.Seconds()
		if t.next == cur {
			secs = now.Sub(t.epoch).Seconds() - float64(cur)*t.interval.Seconds()
			if secs <= 0 {
				break
			}
		}
		row := TimelineRow{T: float64(t.next)*t.interval.Seconds() + secs, Seconds: secs,
			Produced: int64(sl.h.Count()), Consumed: sl.consumed.Load()}
		row.ProducedPerSec = float64(row.Produced) / secs
		row.ConsumedPerSec = float64(row.Consumed) / secs
		if row.Produced > 0 {
			row.SendP50us, row.SendP99us = micros(sl.h.Quantile(0.5)), micros(sl.h.Quantile(0.99))
			row.SendP999us, row.SendMaxUs = micros(sl.h.Quantile(0.999)), micros(sl.h.Max())
		}
		sl.h.Reset()
		sl.consumed.Store(0)
		t.emit(row)
	}
}
