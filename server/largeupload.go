package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// LargeUpload is a large message's body being stored as it arrives, for
// the protocols whose sends come in pieces without Tandem's SendLarge
// frames (AMQP's multi-frame transfers, STOMP's long bodies): Write
// appends the bytes to the large-messages journal a chunk of
// LargeChunkSize at a time (the upload holds at most one chunk in
// memory), Send stores the message once every chunk is durable, and
// Abort drops it. Its chunks are held (the journal's floor does not pass
// them) until Send's outcome or Abort; after that an unstored upload's
// chunks are garbage, reclaimed with their segments.
//
// An upload is used by one goroutine (a connection's reader); Send's done
// runs on the journal's or the server's goroutine.
type LargeUpload struct {
	s     *Server
	lb    *largeBody
	buf   []byte // the chunk being filled
	err   error
	ended bool // Send or Abort called
	once  sync.Once
}

// LargeChunkSize is the size of the chunk records an upload writes (the
// last one may be shorter).
const LargeChunkSize = MaxBodySize

// ErrUploadEnded is returned by a LargeUpload used after Send or Abort.
var ErrUploadEnded = errors.New("server: large upload already ended")

// HasLargeStore reports whether the server has a large-messages journal
// (the file store): without one, BeginLargeUpload fails with
// ErrNoLargeStore and bodies over MaxBodySize are refused.
func (s *Server) HasLargeStore() bool { return s.large != nil }

// BeginLargeUpload starts storing a large body (ErrNoLargeStore without a
// large-messages journal). The caller must end it with Send or Abort.
func (s *Server) BeginLargeUpload() (*LargeUpload, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	id, err := s.beginLarge()
	if err != nil {
		return nil, err
	}
	return &LargeUpload{s: s, lb: &largeBody{id: id}}, nil
}

// Size returns the bytes written so far.
func (u *LargeUpload) Size() int64 { return u.lb.received + int64(len(u.buf)) }

// Write appends p to the body: each full chunk goes to the journal (not
// synced yet; Send syncs). It blocks while the journal has more than its
// bound of bytes not written (the reader stops reading). p is copied.
func (u *LargeUpload) Write(p []byte) (int, error) {
	if u.ended {
		return 0, ErrUploadEnded
	}
	if u.err != nil {
		return 0, u.err
	}
	n := len(p)
	for len(p) > 0 {
		if u.buf == nil {
			u.buf = make([]byte, 0, LargeChunkSize)
		}
		k := min(len(p), LargeChunkSize-len(u.buf))
		u.buf = append(u.buf, p[:k]...)
		p = p[k:]
		if len(u.buf) == LargeChunkSize {
			if err := u.flush(false, nil); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// flush appends the chunk being filled (sync: the last, done once every
// chunk is durable).
func (u *LargeUpload) flush(sync bool, done func(error)) error {
	ready := make(chan struct{})
	var d func(error)
	if done != nil {
		// The completion may run before AppendPos returned the position:
		// it waits for the chunk list to be complete.
		d = func(err error) { <-ready; done(err) }
	}
	pos, err := u.s.appendLargeChunk(u.lb.id, u.buf, sync, d)
	if err != nil {
		u.err = err
		close(ready)
		return err
	}
	u.lb.chunks = append(u.lb.chunks, pos)
	u.lb.received += int64(len(u.buf))
	u.buf = u.buf[:0]
	close(ready)
	return nil
}

// Send stores m (its Body ignored: the upload's bytes are its body) to
// dest through ss once every chunk is durable; done gets the outcome as
// Session.Send reports it (nil: stored, durable and replicated as any
// send). The upload ends: its buffer is freed, its chunks are the
// message's or garbage.
func (u *LargeUpload) Send(ctx context.Context, ss *Session, dest Destination, m *Message, done func(error)) {
	if u.ended {
		done(ErrUploadEnded)
		return
	}
	u.ended = true
	if u.err != nil {
		u.end()
		done(u.err)
		return
	}
	if u.lb.received+int64(len(u.buf)) == 0 {
		u.end()
		done(fmt.Errorf("%w: an empty large message", ErrInvalid))
		return
	}
	// An empty last chunk is written too (as on Tandem's protocol): its
	// sync makes every earlier chunk durable.
	err := u.flush(true, func(err error) {
		if err != nil {
			u.end()
			done(err)
			return
		}
		u.lb.size = u.lb.received
		m.Body = nil
		m.large = u.lb
		ss.Send(ctx, dest, m, func(err error) {
			u.end()
			done(err)
		})
	})
	u.buf = nil
	if err != nil {
		u.end()
		done(err)
	}
}

// Abort ends an upload that is not sent (a transfer aborted, a
// connection lost): its chunks are garbage from now on.
func (u *LargeUpload) Abort() {
	if u.ended {
		return
	}
	u.ended = true
	u.buf = nil
	u.end()
}

func (u *LargeUpload) end() { u.once.Do(func() { u.s.endLarge(u.lb.id) }) }
