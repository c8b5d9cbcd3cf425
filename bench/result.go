package bench

import "time"

// Result is what a run measured; its JSON form is `tandem bench --json`
// (CLI.md's keys first, then extras). Keys that a phase cannot know are
// null: send latencies in a consume phase, lost and duplicated in a
// produce phase, lost in a consume phase (what an earlier run
// acknowledged is not known), broker_cpu_us_per_msg without --http.
type Result struct {
	Produced       int64    `json:"produced"` // sends acknowledged by the broker
	Consumed       int64    `json:"consumed"` // consumptions of this run's messages with a confirmed ack, duplicates included
	ProducedPerSec float64  `json:"produced_per_sec"`
	ConsumedPerSec float64  `json:"consumed_per_sec"`
	SendP50us      *float64 `json:"send_p50_us"`
	SendP99us      *float64 `json:"send_p99_us"`
	SendP999us     *float64 `json:"send_p999_us"`
	SendP9999us    *float64 `json:"send_p9999_us"`
	Lost           *int64   `json:"lost"`
	Duplicated     *int64   `json:"duplicated"`
	// BrokerCPUusPerMsg is the broker process's CPU time during the run
	// (GET /status cpu_seconds, before and after) divided by the messages
	// moved: produced in phases produce and both (each is also consumed in
	// both), consumed in phase consume.
	BrokerCPUusPerMsg *float64 `json:"broker_cpu_us_per_msg"`

	Phase      Phase    `json:"phase"`
	Protocol   string   `json:"protocol"` // tandem or stomp
	Count      int      `json:"count"`
	Producers  int      `json:"producers"`
	Window     int      `json:"window"`
	Consumers  int      `json:"consumers"`
	Size       int      `json:"size"`
	Durable    bool     `json:"durable"`
	SendMaxUs  *float64 `json:"send_max_us"`
	SendFailed int64    `json:"send_failed"`      // sends that ended in an error (each producer stops at its first)
	AckFailed  int64    `json:"ack_failed"`       // consumer acks that ended in an error
	Foreign    int64    `json:"foreign"`          // consumed messages that were not this run's (phase both)
	Unacked    int64    `json:"unacked_consumed"` // consumed although the send reported an error
	ProduceSec float64  `json:"produce_seconds"`  // first send to last acknowledgement
	ConsumeSec float64  `json:"consume_seconds"`  // from the first send (both) or from creating the consumers (consume) to the last confirmed ack
	Error      string   `json:"error,omitempty"`  // the first failure, if any
	// Floor is the synchronous floor measured before the load (Config.FloorDir).
	Floor *Floor `json:"floor,omitempty"`
	// SendP50OverFloor is send_p50_us divided by the floor's sum of p50s
	// (floor.sum_p50_us): 1.0 would be a send that costs one O_DIRECT 4 KiB
	// write + fdatasync plus one loopback round trip and nothing else.
	SendP50OverFloor *float64 `json:"send_p50_over_floor,omitempty"`
}

// OK reports whether the run did what it was asked: every message
// acknowledged (phases produce and both), all of them consumed exactly
// once (both), Count consumed without duplicates (consume).
func (r *Result) OK() bool {
	switch r.Phase {
	case PhaseProduce:
		return r.Produced == int64(r.Count) && r.SendFailed == 0
	case PhaseConsume:
		return r.Consumed == int64(r.Count) && r.Duplicated != nil && *r.Duplicated == 0
	}
	return r.Produced == int64(r.Count) && r.SendFailed == 0 && r.Consumed == r.Produced &&
		r.Lost != nil && *r.Lost == 0 && r.Duplicated != nil && *r.Duplicated == 0
}

func micros(d time.Duration) *float64 {
	v := float64(d) / float64(time.Microsecond)
	return &v
}

func perSec(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
