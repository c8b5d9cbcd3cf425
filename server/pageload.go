package server

import (
	"context"
	"fmt"

	"github.com/tandemmq/tandem/journal"
)

// pageLoad gathers the page records of the messages journal at load.
type pageLoad struct {
	cursors map[uint64]pageCursorRec     // by queue ID
	acks    map[uint64]map[uint64]uint64 // queue ID -> message ID -> RecPageAck record
}

type pageCursorRec struct {
	rec uint64
	pos journal.Position
}

func newPageLoad() *pageLoad {
	return &pageLoad{cursors: map[uint64]pageCursorRec{}, acks: map[uint64]map[uint64]uint64{}}
}

// record takes one page record of the messages journal; records of
// deleted queues (and a second cursor of a queue) are deleted.
func (pl *pageLoad) record(s *Server, rec *journal.Record, mdel *[]journal.Entry) error {
	drop := func() { *mdel = append(*mdel, journal.Entry{Kind: journal.KindDelete, ID: rec.ID}) }
	switch rec.Type {
	case RecPageCursor:
		qid, pos, err := decodePageCursor(rec.Data)
		if err != nil {
			return err
		}
		if s.queueByID[qid] == nil || s.pages == nil {
			drop()
			return nil
		}
		if old, ok := pl.cursors[qid]; ok {
			if posLess(pos, old.pos) { // never written so: keep the further one
				drop()
				return nil
			}
			*mdel = append(*mdel, journal.Entry{Kind: journal.KindDelete, ID: old.rec})
		}
		pl.cursors[qid] = pageCursorRec{rec: rec.ID, pos: pos}
	case RecPageAck:
		qid, msgID, err := decodePageAck(rec.Data)
		if err != nil {
			return err
		}
		if s.queueByID[qid] == nil || s.pages == nil {
			drop()
			return nil
		}
		m := pl.acks[qid]
		if m == nil {
			m = map[uint64]uint64{}
			pl.acks[qid] = m
		}
		if old, ok := m[msgID]; ok {
			*mdel = append(*mdel, journal.Entry{Kind: journal.KindDelete, ID: old})
		}
		m[msgID] = rec.ID
	case RecPageTx:
		txID, lastSeq, err := decodePageTx(rec.Data)
		if err != nil {
			return err
		}
		if s.pages == nil {
			drop()
			return nil
		}
		s.pgTx[txID] = &pageTx{state: txCommitted, lastSeq: lastSeq, recID: rec.ID}
	}
	return nil
}

// loadPages loads the paging journal: each queue's paged messages after
// its cursor and not acknowledged count in its depth (nothing of them is
// kept in memory), their duplicate IDs join their addresses' caches, and
// an address with paged messages pages new ones behind them. Caller holds
// s.mu.
func (s *Server) loadPages(ctx context.Context, pl *pageLoad, mdel *[]journal.Entry) error {
	if s.pages == nil {
		return nil
	}
	live := map[uint64]map[uint64]uint64{} // acks met at or after their cursor
	var e journal.Entry
	var qbuf []uint64
	records, paged := 0, 0
	res, err := s.pages.LoadLog(ctx, func(pos journal.Position, payload []byte) error {
		records++
		it := journal.NewEntryIter(payload)
		for {
			ok, err := it.Next(&e)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			h, err := decodePagedHeader(e.Data, qbuf)
			if err != nil {
				return fmt.Errorf("paging journal record at %v, message %d: %w", pos, e.ID, err)
			}
			qbuf = h.queues
			if e.TxID != 0 && s.pgTx[e.TxID] == nil {
				continue // its transaction never committed
			}
			if len(h.msg) < 2 || h.msg[1]&1 == 0 {
				continue // not persistent: gone with the run that sent it
			}
			counted := false
			for _, qid := range h.queues {
				q := s.queueByID[qid]
				if q == nil {
					continue // deleted since
				}
				if c, ok := pl.cursors[qid]; ok && posLess(pos, c.pos) {
					continue
				}
				if rec, ok := pl.acks[qid][e.ID]; ok {
					m := live[qid]
					if m == nil {
						m = map[uint64]uint64{}
						live[qid] = m
					}
					m[e.ID] = rec
					delete(pl.acks[qid], e.ID)
					continue
				}
				pg := q.pageStateOf(nil)
				pg.pending.Add(1)
				pg.pendingBytes.Add(int64(len(e.Data)))
				counted = true
			}
			if !counted {
				continue
			}
			paged++
			if h.msg[0] == messageFormatLarge {
				m, err := decodeMessage(h.msg)
				if err != nil {
					return fmt.Errorf("paging journal record at %v, message %d: %w", pos, e.ID, err)
				}
				if err := s.checkLargeLoaded(m.large, e.ID); err != nil {
					return err
				}
				s.notePagedLarge(pos, m.large)
			}
			if addr, id, err := messageDupID(h.msg); err == nil && id != "" && s.idCache > 0 {
				a := s.loadAddressLocked(addr)
				if a.dup.lookup(id) == nil {
					if ev, _ := a.dup.add(id, &dupEntry{}); ev != 0 {
						*mdel = append(*mdel, journal.Entry{Kind: journal.KindDelete, ID: ev})
					}
				}
			}
		}
	})
	if err != nil {
		return fmt.Errorf("server: load paging journal: %w", err)
	}
	for _, w := range res.Warnings {
		s.log.Warn("paging journal: "+w, "journal", "paging")
	}
	s.lastID.Store(max(s.lastID.Load(), res.MaxID))
	s.pageBoot = s.pages.DurableEnd()
	start := journal.Position{Seq: s.pages.Oldest()}
	// Acks of messages no longer in the journal (before the cursor, or
	// reclaimed) are stale.
	for _, m := range pl.acks {
		for _, rec := range m {
			*mdel = append(*mdel, journal.Entry{Kind: journal.KindDelete, ID: rec})
		}
	}
	for _, q := range s.queues {
		c, hasCursor := pl.cursors[q.id]
		acks := live[q.id]
		if !hasCursor && len(acks) == 0 && q.pg() == nil {
			continue
		}
		pg := q.pageStateOf(nil)
		pg.resume, pg.cursorRec = c.pos, c.rec
		pg.readPos = pg.resume
		if posLess(pg.readPos, start) {
			pg.readPos = start
		}
		pg.loadAcks = acks
		if pg.pending.Load() > 0 {
			q.addr.paging = true
		}
	}
	s.log.Info("paging journal loaded", "records", records, "paged_messages", paged, "oldest_segment", start.Seq,
		"end", s.pageBoot.String(), "transactions", len(s.pgTx))
	return nil
}

// messageDupID reads the address and duplicate ID of an encoded message
// without decoding the rest.
func messageDupID(b []byte) (address, id string, err error) {
	d := decoder{b: b}
	f := d.byte()
	if f != messageFormat && f != messageFormatExpiry {
		return "", "", fmt.Errorf("message record: unknown format %d", f)
	}
	d.byte()
	d.uint64()
	if f == messageFormatExpiry {
		d.uint64()
	}
	address = d.string()
	id = d.string()
	return address, id, d.err
}
