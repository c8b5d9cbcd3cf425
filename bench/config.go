package bench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/tandemmq/tandem/client"
	"github.com/tandemmq/tandem/wire"
)

// Phase says which half of a run to do.
type Phase string

// Phases (CLI.md): produce only, consume only (drain a queue an earlier
// produce phase filled), or both at once.
const (
	PhaseBoth    Phase = "both"
	PhaseProduce Phase = "produce"
	PhaseConsume Phase = "consume"
)

// ParsePhase parses "produce", "consume" or "both".
func ParsePhase(s string) (Phase, error) {
	switch p := Phase(s); p {
	case PhaseBoth, PhaseProduce, PhaseConsume:
		return p, nil
	}
	return "", fmt.Errorf("phase %q: want produce, consume or both", s)
}

// Config describes a run.
type Config struct {
	URL         string             // broker URL (client.ParseURL forms; tcp://host:port for STOMP)
	Protocol    string             // ProtocolTandem (default) or ProtocolStomp
	Destination client.Destination // default queue://bench
	Producers   int                // default 1
	Window      int                // sends unconfirmed per producer; default 1 (each send waits)
	Consumers   int                // default 1
	Size        int                // message body bytes; default 1024
	Count       int                // messages in total (split over producers); default 10000
	Phase       Phase              // default PhaseBoth
	NonDurable  bool               // send non-persistent messages
	Credit      int                // consumer window; default 1000
	// HTTP is the broker's management address (host:port) for
	// broker_cpu_us_per_msg; empty leaves it unknown.
	HTTP string
	// Idle ends consumption when no message arrived for this long after
	// the producers finished (phase both) or at all (phase consume).
	// Default 5s.
	Idle time.Duration
	// RunID prefixes message IDs (RUNID.P-SEQ); default random.
	RunID string
	// User and Password log every connection in (any protocol); empty:
	// the URL's user and password options, else anonymous.
	User, Password string
	// Progress, when set, is called about every ProgressEvery (default
	// 200ms) from the goroutine running Run, and once at the end.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// Timeline, when set, receives one TimelineRow per second of the run
	// as a JSON line (`tandem bench --timeline FILE`).
	Timeline io.Writer
	// FloorDir, when set, makes Run measure the synchronous floor
	// (MeasureFloor) before the load: the disk part in this directory
	// (put it on the broker's file system), the loopback part against a
	// process started with FloorEcho (the `tandem bench-echo` command:
	// see ServeEcho). Result.Floor and Result.SendP50OverFloor report it.
	FloorDir  string
	FloorEcho []string
	Logger    *slog.Logger
}

// Progress is a snapshot of a running benchmark.
type Progress struct {
	Phase    Phase
	Count    int64 // messages to produce (and consume)
	Produced int64 // sends acknowledged so far
	Consumed int64 // acks confirmed so far
	Elapsed  time.Duration
	Final    bool // the last call
}

func (c *Config) setDefaults() {
	if c.Protocol == "" {
		c.Protocol = ProtocolTandem
	}
	if c.Destination.Name == "" {
		c.Destination = client.Queue("bench")
	}
	if c.Producers == 0 {
		c.Producers = 1
	}
	if c.Window == 0 {
		c.Window = 1
	}
	if c.Consumers == 0 {
		c.Consumers = 1
	}
	if c.Count == 0 {
		c.Count = 10000
	}
	if c.Phase == "" {
		c.Phase = PhaseBoth
	}
	if c.Credit == 0 {
		c.Credit = 1000
	}
	if c.Idle == 0 {
		c.Idle = 5 * time.Second
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = 200 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// check validates a Config after setDefaults; the error names the field
// as the command line spells it.
func (c *Config) check() error {
	switch {
	case c.URL == "":
		return errors.New("--url is required")
	case c.Producers < 1:
		return errors.New("--producers must be >= 1")
	case c.Window < 1:
		return errors.New("--window must be >= 1")
	case c.Consumers < 1:
		return errors.New("--consumers must be >= 1")
	case c.Size < 0 || c.Size > wire.MaxBodySize:
		return fmt.Errorf("--size must be 0..%d", wire.MaxBodySize)
	case c.Count < 1:
		return errors.New("--count must be >= 1")
	case c.Credit < 1:
		return errors.New("--credit must be >= 1")
	case c.Idle < 0:
		return errors.New("--idle must be >= 0")
	case c.FloorDir != "" && len(c.FloorEcho) == 0:
		return errors.New("--floor-dir needs the echo command (Config.FloorEcho)")
	}
	if _, err := ParsePhase(string(c.Phase)); err != nil {
		return fmt.Errorf("--phase: %w", err)
	}
	switch c.Protocol {
	case ProtocolTandem:
		if _, err := client.ParseURL(c.URL); err != nil {
			return fmt.Errorf("--url: %w", err)
		}
	case ProtocolStomp:
		if _, err := stompAddr(c.URL); err != nil {
			return fmt.Errorf("--url: %w", err)
		}
	case ProtocolAMQP:
		if _, err := amqpAddr(c.URL); err != nil {
			return fmt.Errorf("--url: %w", err)
		}
	default:
		return fmt.Errorf("--protocol %q: want %s, %s or %s", c.Protocol, ProtocolTandem, ProtocolStomp, ProtocolAMQP)
	}
	return nil
}

// Check applies the defaults to a copy of c and validates it; Run does the
// same.
func (c Config) Check() error {
	c.setDefaults()
	return c.check()
}
