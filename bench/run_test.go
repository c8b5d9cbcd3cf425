package bench

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/tandemmq/tandem/amqp"
	"github.com/tandemmq/tandem/client"
	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/stomp"
	"github.com/tandemmq/tandem/wire"
)

// memBroker starts an in-process broker on memory journals and returns
// its URL.
func memBroker(t *testing.T) string {
	t.Helper()
	mj, bj := journal.NewMemory(), journal.NewMemory()
	s := server.New(server.Options{Messages: mj, Bindings: bj, Logger: slog.New(slog.DiscardHandler)})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.RegisterProtocol(stomp.New(stomp.Options{}))
	s.RegisterProtocol(amqp.New())
	a, err := s.Listen("127.0.0.1:0", server.NetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.Close(wire.CodeShuttingDown, "test over")
		s.Close()
		mj.Close()
		bj.Close()
	})
	return "tcp://" + a.Addr().String()
}

func TestRunShapes(t *testing.T) {
	url := memBroker(t)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"sync", Config{Count: 200}},
		{"several sync producers and consumers", Config{Count: 301, Producers: 4, Consumers: 3}},
		{"windowed", Config{Count: 1000, Window: 64}},
		{"windowed producers", Config{Count: 1000, Window: 16, Producers: 3, Consumers: 2, Credit: 10}},
		{"non-durable", Config{Count: 300, Window: 8, NonDurable: true}},
		{"empty bodies", Config{Count: 50, Window: 4, Size: 0}},
	}
	for _, proto := range []string{ProtocolTandem, ProtocolStomp, ProtocolAMQP} {
		for i, tc := range tests {
			t.Run(proto+"/"+tc.name, func(t *testing.T) {
				cfg := tc.cfg
				cfg.URL, cfg.Protocol = url, proto
				cfg.Destination = client.Queue(proto + "shape" + string(rune('a'+i)))
				if cfg.Size == 0 && tc.name != "empty bodies" {
					cfg.Size = 100
				}
				var calls int
				cfg.Progress = func(Progress) { calls++ }
				res := run(t, cfg)
				if !res.OK() || res.Produced != int64(cfg.Count) || res.Consumed != int64(cfg.Count) ||
					*res.Lost != 0 || *res.Duplicated != 0 || res.Error != "" {
					t.Fatalf("result %+v", res)
				}
				if res.SendP50us == nil || *res.SendP50us <= 0 || *res.SendP999us < *res.SendP50us {
					t.Fatalf("latencies p50 %v p999 %v", res.SendP50us, res.SendP999us)
				}
				if calls == 0 {
					t.Fatal("Progress never called")
				}
			})
		}
	}
}

// A produce phase fills the queue, a consume phase drains it: exactly the
// produced messages, none twice; a second drain of the empty queue fails.
func TestRunProduceThenConsume(t *testing.T) {
	url := memBroker(t)
	dest := client.Queue("pc")
	res := run(t, Config{URL: url, Destination: dest, Count: 500, Window: 32, Producers: 2, Phase: PhaseProduce})
	if !res.OK() || res.Produced != 500 || res.Lost != nil || res.Duplicated != nil {
		t.Fatalf("produce: %+v", res)
	}
	res = run(t, Config{URL: url, Destination: dest, Count: 400, Consumers: 2, Phase: PhaseConsume, Credit: 50})
	if !res.OK() || res.Consumed != 400 || res.Lost != nil || *res.Duplicated != 0 || res.SendP50us != nil {
		t.Fatalf("consume 400: %+v", res)
	}
	res = run(t, Config{URL: url, Destination: dest, Count: 100, Phase: PhaseConsume})
	if !res.OK() || res.Consumed != 100 {
		t.Fatalf("consume the other 100: %+v", res)
	}
	res = run(t, Config{URL: url, Destination: dest, Count: 1, Phase: PhaseConsume, Idle: 100 * time.Millisecond})
	if res.OK() || res.Consumed != 0 || res.Error == "" {
		t.Fatalf("consume from an empty queue: %+v", res)
	}
}

// Messages of another run in the queue are drained as foreign, not counted
// as this run's.
func TestRunForeignMessages(t *testing.T) {
	url := memBroker(t)
	dest := client.Queue("foreign")
	run(t, Config{URL: url, Destination: dest, Count: 20, Phase: PhaseProduce, RunID: "old"})
	res := run(t, Config{URL: url, Destination: dest, Count: 30, Window: 4})
	if !res.OK() || res.Consumed != 30 || res.Foreign != 20 {
		t.Fatalf("%+v", res)
	}
}

func TestRunCannotStart(t *testing.T) {
	ctx := context.Background()
	for _, cfg := range []Config{
		{},                             // no URL
		{URL: "http://x:1"},            // bad URL
		{URL: "tcp://a:1", Window: -1}, // bad window
		{URL: "tcp://a:1", Phase: "x"},
		{URL: "tcp://127.0.0.1:1"}, // nothing listens
	} {
		if _, err := Run(ctx, cfg); err == nil {
			t.Errorf("Run(%+v) started", cfg)
		}
	}
}

func run(t *testing.T, cfg Config) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
