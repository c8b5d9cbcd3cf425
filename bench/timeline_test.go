package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/tandemmq/tandem/client"
)

// --timeline writes one row per second whose counts add up to the run's,
// whose intervals follow each other from 0 to the end, and whose
// latencies are ordered; the run reports p99.99 between p99.9 and max.
func TestTimelineAndTail(t *testing.T) {
	url := memBroker(t)
	var buf bytes.Buffer
	res := run(t, Config{URL: url, Destination: client.Queue("tl"), Count: 600, Size: 100, Timeline: &buf,
		Progress: func(Progress) { time.Sleep(time.Millisecond) }})
	if !res.OK() {
		t.Fatalf("result %+v", res)
	}
	if res.SendP9999us == nil || *res.SendP9999us < *res.SendP999us || *res.SendP9999us > *res.SendMaxUs {
		t.Fatalf("p99.9 %v, p99.99 %v, max %v", *res.SendP999us, res.SendP9999us, *res.SendMaxUs)
	}
	var produced, consumed int64
	prevT := 0.0
	sc := bufio.NewScanner(&buf)
	rows := 0
	for sc.Scan() {
		var row TimelineRow
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&row); err != nil {
			t.Fatalf("row %d %q: %v", rows, sc.Text(), err)
		}
		rows++
		if row.Seconds <= 0 || row.Seconds > 1 || row.T-row.Seconds < prevT-1e-9 || row.T-row.Seconds > prevT+1e-9 {
			t.Fatalf("row %d covers [%v, %v) after %v", rows, row.T-row.Seconds, row.T, prevT)
		}
		prevT = row.T
		produced += row.Produced
		consumed += row.Consumed
		if row.Produced > 0 {
			if row.SendP50us == nil || *row.SendP50us > *row.SendP99us || *row.SendP99us > *row.SendP999us || *row.SendP999us > *row.SendMaxUs {
				t.Fatalf("row %d latencies out of order: %s", rows, sc.Text())
			}
		} else if row.SendP50us != nil {
			t.Fatalf("row %d without sends has latencies: %s", rows, sc.Text())
		}
	}
	if rows == 0 || produced != res.Produced || consumed != res.Consumed {
		t.Fatalf("%d rows count %d produced, %d consumed; the run %d, %d", rows, produced, consumed, res.Produced, res.Consumed)
	}
}

// The timeline writes a second only once it can receive no more records
// (two seconds later), reuses its slots, and ends with a partial row.
// (The run flushes it every 50 ms; a slot is reused four seconds on.)
func TestTimelineSeconds(t *testing.T) {
	var buf bytes.Buffer
	e := time.Now()
	tl := newTimeline(&buf, e)
	at := func(s float64) time.Time { return e.Add(time.Duration(s * float64(time.Second))) }
	tl.recordAt(at(0.5), 100*time.Microsecond)
	tl.consumedAt(at(0.6))
	tl.recordAt(at(1.2), 300*time.Microsecond)
	tl.recordAt(at(1.7), 40*time.Millisecond)
	tl.flush(at(2.5), false) // second 0 only
	tl.flush(at(3.5), false) // second 1
	tl.recordAt(at(4.1), 200*time.Microsecond)
	tl.flush(at(4.5), false)               // second 2
	tl.recordAt(at(5.2), time.Millisecond) // the slot of second 1, reused
	tl.flush(at(5.5), true)
	var rows []TimelineRow
	for sc := bufio.NewScanner(&buf); sc.Scan(); {
		var row TimelineRow
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row)
	}
	us := func(p *float64) float64 {
		if p == nil {
			return -1
		}
		return *p
	}
	want := []struct {
		t, secs   float64
		prod, con int64
		max       float64
	}{
		{1, 1, 1, 1, 100}, {2, 1, 2, 0, 40000}, {3, 1, 0, 0, -1}, {4, 1, 0, 0, -1}, {5, 1, 1, 0, 200}, {5.5, 0.5, 1, 0, 1000},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows: %+v", len(rows), rows)
	}
	for i, w := range want {
		r := rows[i]
		if r.T < w.t-1e-6 || r.T > w.t+1e-6 || r.Seconds < w.secs-1e-6 || r.Seconds > w.secs+1e-6 ||
			r.Produced != w.prod || r.Consumed != w.con || (us(r.SendMaxUs) < w.max*0.98 || us(r.SendMaxUs) > w.max*1.02) && w.max >= 0 {
			t.Errorf("row %d: %+v max %v, want %+v", i, r, us(r.SendMaxUs), w)
		}
	}
	if r := rows[1]; us(r.SendP50us) < 290 || us(r.SendP50us) > 310 {
		t.Errorf("second 1 p50 %v, want 300", us(r.SendP50us))
	}
	if rows[1].ProducedPerSec != 2 || rows[5].ProducedPerSec != 2 {
		t.Errorf("rates %v %v", rows[1].ProducedPerSec, rows[5].ProducedPerSec)
	}
}
