package bench

import (
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// bitset is a set of sequence numbers 1..n as bits; set is safe for
// concurrent use as long as the set does not grow meanwhile.
type bitset []atomic.Uint64

// set sets bit i and reports whether it was already set.
func (b bitset) set(i uint64) bool {
	w, m := i/64, uint64(1)<<(i%64)
	return b[w].Or(m)&m != 0
}

func grow(b bitset, bitsWanted uint64) bitset {
	words := (bitsWanted + 63) / 64
	if uint64(len(b)) >= words {
		return b
	}
	nb := make(bitset, max(words, uint64(2*len(b))))
	for i := range b {
		nb[i].Store(b[i].Load())
	}
	return nb
}

// Stream is one producer's messages, sequence numbers 1..N, as the
// Checker tracks them. Acked is safe for concurrent use.
type Stream struct {
	prefix   string
	n        uint64 // sequence numbers 1..n were registered; 0 for a stream seen only by consumers
	acked    bitset
	consumed bitset // guarded by Checker.mu when it grows (n == 0)
	nAcked   atomic.Int64
	unique   int64 // guarded by Checker.mu
	dups     int64 // guarded by Checker.mu
}

// Prefix returns the ID prefix of the stream's messages.
func (s *Stream) Prefix() string { return s.prefix }

// ID returns the message ID of sequence number seq: PREFIX-SEQ.
func (s *Stream) ID(seq uint64) string { return s.prefix + "-" + strconv.FormatUint(seq, 10) }

// Acked records that the broker acknowledged (stored) sequence number seq
// (1..N). Out-of-range numbers are ignored.
func (s *Stream) Acked(seq uint64) {
	if seq == 0 || seq > s.n {
		return
	}
	if !s.acked.set(seq - 1) {
		s.nAcked.Add(1)
	}
}

// Outcome says what a consumed message was to the Checker.
type Outcome uint8

const (
	// First is the first consumption of one of the tracked messages.
	First Outcome = iota
	// Duplicate is a message consumed before.
	Duplicate
	// Foreign is a message that is not one of the tracked ones (another
	// run's, or without a PREFIX-SEQ ID).
	Foreign
)

// Checker verifies exactly-once delivery: producers register their
// streams and mark acknowledged sequence numbers; consumers report every
// message whose acknowledgement the broker confirmed. A message acked but
// never consumed is lost; one consumed more than once is duplicated.
//
// A closed Checker (NewChecker(true)) tracks only registered streams and
// counts any other message as Foreign. An open one (NewChecker(false), for
// draining a queue another run filled) tracks every PREFIX-SEQ ID it sees;
// then nothing is known to have been acknowledged, so lost is unknown.
type Checker struct {
	closed  bool
	mu      sync.Mutex
	streams map[string]*Stream
	foreign int64
}

// NewChecker returns a Checker; closed says whether only registered
// streams count.
func NewChecker(closed bool) *Checker {
	return &Checker{closed: closed, streams: map[string]*Stream{}}
}

// Register adds a stream of sequence numbers 1..n with IDs PREFIX-SEQ.
// Register every stream before the first Consumed call.
func (c *Checker) Register(prefix string, n int) *Stream {
	s := &Stream{prefix: prefix, n: uint64(n)}
	s.acked = grow(nil, s.n)
	s.consumed = grow(nil, s.n)
	c.mu.Lock()
	c.streams[prefix] = s
	c.mu.Unlock()
	return s
}

// SplitID splits a message ID PREFIX-SEQ (SEQ a decimal number > 0) at its
// last '-'.
func SplitID(id string) (prefix string, seq uint64, ok bool) {
	i := strings.LastIndexByte(id, '-')
	if i <= 0 || i == len(id)-1 {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(id[i+1:], 10, 64)
	if err != nil || seq == 0 {
		return "", 0, false
	}
	return id[:i], seq, true
}

// maxOpenSeq bounds the sequence numbers an open Checker tracks, so that
// one odd ID cannot make it allocate much (2^27 bits are 16 MiB): larger
// ones count as Foreign.
const maxOpenSeq = 1 << 27

// Consumed records a consumed message by its ID and says what it was.
func (c *Checker) Consumed(id string) Outcome {
	prefix, seq, ok := SplitID(id)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok {
		c.foreign++
		return Foreign
	}
	s := c.streams[prefix]
	if s == nil {
		if c.closed || seq > maxOpenSeq {
			c.foreign++
			return Foreign
		}
		s = &Stream{prefix: strings.Clone(prefix)}
		c.streams[s.prefix] = s
	}
	if s.n == 0 {
		if seq > maxOpenSeq {
			c.foreign++
			return Foreign
		}
		s.consumed = grow(s.consumed, seq)
	} else if seq > s.n {
		c.foreign++
		return Foreign
	}
	if s.consumed.set(seq - 1) {
		s.dups++
		return Duplicate
	}
	s.unique++
	return First
}

// Report is what a Checker found.
type Report struct {
	Acked      int64 // acknowledged sends of registered streams
	Consumed   int64 // consumptions of tracked messages, duplicates included
	Unique     int64 // distinct tracked messages consumed
	Duplicated int64 // consumptions beyond the first
	Foreign    int64 // consumed messages that are not tracked ones
	// Lost is the number of acknowledged messages never consumed; -1 when
	// unknown (an open Checker, which knows of no acknowledgements).
	Lost int64
	// Unacked is the number of registered messages consumed although
	// their send was not acknowledged (a send whose outcome was an error
	// may still have been stored); not an error.
	Unacked int64
}

// Report counts what was recorded so far. Call it once producers and
// consumers have stopped.
func (c *Checker) Report() Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := Report{Foreign: c.foreign}
	if !c.closed {
		r.Lost = -1
	}
	for _, s := range c.streams {
		r.Acked += s.nAcked.Load()
		r.Unique += s.unique
		r.Duplicated += s.dups
		if s.n == 0 {
			continue
		}
		for w := range s.acked {
			a, k := s.acked[w].Load(), s.consumed[w].Load()
			if r.Lost >= 0 {
				r.Lost += int64(bits64(a &^ k))
			}
			r.Unacked += int64(bits64(k &^ a))
		}
	}
	r.Consumed = r.Unique + r.Duplicated
	return r
}

func bits64(x uint64) int { return bits.OnesCount64(x) }
