package bench

import (
	"context"
	"testing"
	"time"
)

// A short soak: the mixed load runs, consumers restart (half of the time
// with a new connection) while the long-lived queue holds its messages,
// the drain consumes everything, and the checker finds nothing lost or
// duplicated; the rows add up to the run.
func TestSoak(t *testing.T) {
	url := memBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var rows []SoakRow
	res, err := Soak(ctx, SoakConfig{URL: url, Duration: 3 * time.Second, Interval: time.Second, Rate: 600,
		Producers: 3, Window: 4, Consumers: 2, Size: 100, LongEvery: 5, LongHold: 40,
		RestartEvery: 500 * time.Millisecond, Report: func(r SoakRow) { rows = append(rows, r) }})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Produced == 0 || res.Consumed != res.Produced || res.Restarts < 1 {
		t.Fatalf("result %+v", res)
	}
	if len(rows) < 3 || len(rows) != len(res.Rows) {
		t.Fatalf("%d rows reported, %d in the result", len(rows), len(res.Rows))
	}
	var produced, consumed int64
	for _, r := range rows {
		produced += r.Produced
		consumed += r.Consumed
		if r.DataBytes != -1 || r.BrokerRSS != -1 {
			t.Fatalf("figures without a data directory or management address: %+v", r)
		}
	}
	if produced != res.Produced || consumed != res.Consumed {
		t.Fatalf("rows count %d produced, %d consumed; the soak %d, %d", produced, consumed, res.Produced, res.Consumed)
	}
	if res.SendP50us <= 0 || res.SendP50us > res.SendMaxUs {
		t.Fatalf("latencies %+v", res)
	}
}

func TestSoakCannotStart(t *testing.T) {
	for _, cfg := range []SoakConfig{{}, {URL: "tcp://127.0.0.1:1"}, {URL: "tcp://127.0.0.1:1", Rate: 10}} {
		if _, err := Soak(context.Background(), cfg); err == nil {
			t.Errorf("Soak(%+v) started", cfg)
		}
	}
}
