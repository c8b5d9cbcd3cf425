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

// timelineSlots is the ring of per-second slots: second s is recorded
// into slot s%timelineSlots and written out once second s+2 has begun, so
// two seconds of slack separate the last record into a slot from its
// reset.
const timelineSlots = 4

// timeline collects per-second figures and writes one TimelineRow per
// second. record and consumed are safe for concurrent use; flush is
// called from one goroutine, at least once a second (the run loop calls
// it every 50 ms), so that a slot is written before it is reused.
type timeline struct {
	w     *bufio.Writer
	epoch time.Time
	slots [timelineSlots]timelineSlot
	next  int64 // next second to write
	err   error // first write error
}

type timelineSlot struct {
	h        Histogram
	consumed atomic.Int64
}

func newTimeline(w io.Writer, epoch time.Time) *timeline {
	return &timeline{w: bufio.NewWriter(w), epoch: epoch}
}

func (t *timeline) second(now time.Time) int64 { return int64(now.Sub(t.epoch) / time.Second) }

// record counts a send acknowledged now after d.
func (t *timeline) record(d time.Duration) { t.recordAt(time.Now(), d) }

func (t *timeline) recordAt(now time.Time, d time.Duration) {
	t.slots[t.second(now)%timelineSlots].h.Record(d)
}

// consumed counts an ack confirmed now.
func (t *timeline) consumed() { t.consumedAt(time.Now()) }

func (t *timeline) consumedAt(now time.Time) {
	t.slots[t.second(now)%timelineSlots].consumed.Add(1)
}

// flush writes the rows of the seconds that can no longer receive
// records; with final, every row up to now, the last one partial.
func (t *timeline) flush(now time.Time, final bool) {
	cur := t.second(now)
	last := cur - 2
	if final {
		last = cur
	}
	for ; t.next <= last; t.next++ {
		sl := &t.slots[t.next%timelineSlots]
		secs := 1.0
		if t.next == cur {
			secs = now.Sub(t.epoch).Seconds() - float64(cur)
			if secs <= 0 {
				break
			}
		}
		row := TimelineRow{T: float64(t.next) + secs, Seconds: secs,
			Produced: int64(sl.h.Count()), Consumed: sl.consumed.Load()}
		row.ProducedPerSec = float64(row.Produced) / secs
		row.ConsumedPerSec = float64(row.Consumed) / secs
		if row.Produced > 0 {
			row.SendP50us, row.SendP99us = micros(sl.h.Quantile(0.5)), micros(sl.h.Quantile(0.99))
			row.SendP999us, row.SendMaxUs = micros(sl.h.Quantile(0.999)), micros(sl.h.Max())
		}
		sl.h.Reset()
		sl.consumed.Store(0)
		b, _ := json.Marshal(&row)
		b = append(b, '\n')
		if _, err := t.w.Write(b); err != nil && t.err == nil {
			t.err = err
		}
	}
	if err := t.w.Flush(); err != nil && t.err == nil {
		t.err = err
	}
}
