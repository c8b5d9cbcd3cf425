package jdbcstore

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/tandemmq/tandem/journal"
)

// state is the live set as the table holds it: for every live record the
// rows that make it up, the open (unfinished or prepared) transactions with
// their rows, and the committed transactions whose commit row must stay
// because some of their rows still do. It decides, for every entry, whether
// a row is inserted and which rows are deleted, so the table only ever
// holds what replay needs. The writer's copy validates appends; replay
// builds one from the rows.
type state struct {
	live      map[uint64]*liveRec
	open      map[uint64]*openTx
	committed map[int64]*committedTx // by the seq of the commit row
	maxID     uint64

	// Replay only: the records' contents and the order they became live.
	replay  bool
	records []*liveRec // in the order they became live, dead ones included
}

// rowRef is a row that is part of a live record; commit is the seq of the
// commit row of the transaction it came from (0 for a plain add or
// update). A transaction ID may come back after its transaction ended, so
// the commit row, not the ID, names a committed transaction.
type rowRef struct {
	seq    int64
	commit int64
}

type liveRec struct {
	refs []rowRef
	rec  *journal.Record // replay only
}

type txOp struct {
	kind journal.Kind
	id   uint64
	seq  int64
}

type openTx struct {
	ops         []txOp
	prepareSeqs []int64
	// Replay only.
	entries     []journal.Entry
	prepareData []byte
	prepareSeq  int64
}

type committedTx struct {
	commitSeq  int64
	remaining  int  // rows of this transaction still in the table
	committing bool // being applied: the count may pass through zero
}

func newState(replay bool) *state {
	return &state{
		live:      make(map[uint64]*liveRec),
		open:      make(map[uint64]*openTx),
		committed: make(map[int64]*committedTx),
		replay:    replay,
	}
}

// undoLog reverts a failed multi-entry append. nil means "do not record":
// a single entry is validated before anything changes.
type undoLog struct{ fns []func() }

func (u *undoLog) add(f func()) {
	if u != nil {
		u.fns = append(u.fns, f)
	}
}

func (u *undoLog) run() {
	for i := len(u.fns) - 1; i >= 0; i-- {
		u.fns[i]()
	}
	u.fns = u.fns[:0]
}

// apply applies entry e, whose row would have sequence seq. It returns
// whether that row must be kept in the table and appends to dels the rows
// that are no longer needed. In append mode an invalid entry returns the
// journal's error and changes nothing; in replay mode the checks that only
// hold at append time are skipped (a prepared transaction may update a
// record deleted later).
func (s *state) apply(e *journal.Entry, seq int64, dels *[]int64, u *undoLog) (keep bool, err error) {
	if !e.Kind.Valid() {
		return false, fmt.Errorf("%w: %d", journal.ErrInvalidEntry, uint8(e.Kind))
	}
	if s.replay {
		// Every row counts, even one replay finds no use for.
		s.noteIDs(e, nil)
	}
	switch e.Kind {
	case journal.KindAdd:
		if s.live[e.ID] != nil {
			if s.replay {
				return false, nil // the loader keeps the first add
			}
			return false, journal.ErrDuplicateRecord
		}
		s.makeLive(e.ID, rowRef{seq: seq}, e, u)
		keep = true
	case journal.KindUpdate:
		rec := s.live[e.ID]
		if rec == nil {
			if s.replay {
				return false, nil
			}
			return false, journal.ErrUnknownRecord
		}
		s.addRef(rec, rowRef{seq: seq}, e, u)
		keep = true
	case journal.KindDelete:
		rec := s.live[e.ID]
		if rec == nil {
			if s.replay {
				return false, nil
			}
			return false, journal.ErrUnknownRecord
		}
		s.drop(e.ID, rec, dels, u)
	case journal.KindAddTx, journal.KindUpdateTx, journal.KindDeleteTx:
		tx := s.open[e.TxID]
		if !s.replay {
			if err := s.checkTxOp(e, tx); err != nil {
				return false, err
			}
		}
		if tx == nil {
			tx = &openTx{}
			s.open[e.TxID] = tx
			id := e.TxID
			u.add(func() { delete(s.open, id) })
		}
		n := len(tx.ops)
		tx.ops = append(tx.ops, txOp{kind: e.Kind, id: e.ID, seq: seq})
		u.add(func() { tx.ops = tx.ops[:n] })
		if s.replay {
			tx.entries = append(tx.entries, *e)
		}
		keep = true
	case journal.KindPrepare:
		tx := s.open[e.TxID]
		if tx == nil || len(tx.prepareSeqs) > 0 {
			if s.replay {
				return false, nil
			}
			if tx == nil {
				return false, journal.ErrUnknownTx
			}
			return false, fmt.Errorf("%w: already prepared", journal.ErrUnknownTx)
		}
		tx.prepareSeqs = append(tx.prepareSeqs, seq)
		u.add(func() { tx.prepareSeqs = tx.prepareSeqs[:0] })
		if s.replay {
			tx.prepareData, tx.prepareSeq = e.Data, seq
		}
		keep = true
	case journal.KindCommit:
		tx := s.open[e.TxID]
		if tx == nil {
			if !s.replay {
				return false, journal.ErrUnknownTx
			}
			return false, nil // nothing of it is left: the row is garbage
		}
		if !s.replay {
			// Refuse a conflicting commit as a unit, before changing anything.
			for _, op := range tx.ops {
				if op.kind == journal.KindAddTx && s.live[op.id] != nil {
					return false, fmt.Errorf("%w: commit adds record %d", journal.ErrDuplicateRecord, op.id)
				}
			}
		}
		keep = s.commit(e.TxID, tx, seq, dels, u)
	case journal.KindRollback:
		tx := s.open[e.TxID]
		if tx == nil {
			if !s.replay {
				return false, journal.ErrUnknownTx
			}
			return false, nil
		}
		s.forget(e.TxID, tx, dels, u)
	}
	if !s.replay {
		s.noteIDs(e, u)
	}
	return keep, nil
}

// noteIDs raises maxID to the entry's record and transaction IDs, as the
// journal package counts them.
func (s *state) noteIDs(e *journal.Entry, u *undoLog) {
	if e.Kind.Transactional() {
		s.noteID(e.TxID, u)
	}
	switch e.Kind {
	case journal.KindAdd, journal.KindUpdate, journal.KindDelete, journal.KindAddTx, journal.KindUpdateTx, journal.KindDeleteTx:
		s.noteID(e.ID, u)
	}
}

// stage applies one Append's entries, numbering their rows from seq, and
// fills p with the rows to insert (data copied), the rows to delete and
// the largest ID so far. On error nothing changed. It returns the next
// free sequence number.
func (s *state) stage(entries []journal.Entry, seq int64, epoch uint64, p *pending) (int64, error) {
	var u *undoLog
	if len(entries) > 1 {
		u = &undoLog{}
	}
	for i := range entries {
		e := &entries[i]
		keep, err := s.apply(e, seq, &p.dels, u)
		if err != nil {
			if u != nil {
				u.run()
			}
			p.rows, p.dels = nil, nil
			if len(entries) > 1 {
				return 0, fmt.Errorf("entry %d (%s id %d tx %d): %w", i, e.Kind, e.ID, e.TxID, err)
			}
			return 0, err
		}
		if keep {
			r := row{seq: seq, kind: e.Kind, id: e.ID, txID: e.TxID, userType: e.Type, epoch: epoch}
			if len(e.Data) > 0 {
				r.data = append([]byte(nil), e.Data...)
			}
			r.crc = r.sum()
			p.rows = append(p.rows, r)
		}
		seq++
	}
	p.maxID = s.maxID
	return seq, nil
}

// checkTxOp validates a transactional add, update or delete at append time,
// with the journal package's rules: a prepared transaction takes no more
// entries; an add must not name a live record or one the transaction adds;
// an update or delete must name a live record or one the transaction adds.
func (s *state) checkTxOp(e *journal.Entry, tx *openTx) error {
	if tx != nil && len(tx.prepareSeqs) > 0 {
		return fmt.Errorf("%w: transaction is prepared: only commit or rollback may follow", journal.ErrUnknownTx)
	}
	live := s.live[e.ID] != nil
	added := tx != nil && addedIn(tx, e.ID)
	switch {
	case e.Kind == journal.KindAddTx && (live || added):
		return journal.ErrDuplicateRecord
	case e.Kind != journal.KindAddTx && !live && !added:
		return journal.ErrUnknownRecord
	}
	return nil
}

// addedIn reports whether the transaction's last entry for id adds or
// updates it (not deletes it).
func addedIn(tx *openTx, id uint64) bool {
	for i := len(tx.ops) - 1; i >= 0; i-- {
		if tx.ops[i].id == id {
			return tx.ops[i].kind != journal.KindDeleteTx
		}
	}
	return false
}

func (s *state) noteID(id uint64, u *undoLog) {
	if id > s.maxID {
		old := s.maxID
		s.maxID = id
		u.add(func() { s.maxID = old })
	}
}

func (s *state) makeLive(id uint64, ref rowRef, e *journal.Entry, u *undoLog) *liveRec {
	rec := &liveRec{refs: []rowRef{ref}}
	if s.replay {
		rec.rec = &journal.Record{ID: id, Type: e.Type, Data: e.Data}
		s.records = append(s.records, rec)
	}
	s.live[id] = rec
	u.add(func() { delete(s.live, id) })
	return rec
}

func (s *state) addRef(rec *liveRec, ref rowRef, e *journal.Entry, u *undoLog) {
	n := len(rec.refs)
	rec.refs = append(rec.refs, ref)
	u.add(func() { rec.refs = rec.refs[:n] })
	if s.replay {
		rec.rec.Updates = append(rec.rec.Updates, journal.Update{Type: e.Type, Data: e.Data})
	}
	if ref.commit != 0 {
		s.countTx(ref.commit, 1, dropsNone, u)
	}
}

// dropsNone is passed to countTx when the count only grows.
var dropsNone *[]int64

// countTx changes the number of rows a committed transaction still has in
// the table; at zero its commit row goes too.
func (s *state) countTx(commitSeq int64, delta int, dels *[]int64, u *undoLog) {
	c := s.committed[commitSeq]
	if c == nil {
		return
	}
	c.remaining += delta
	u.add(func() { c.remaining -= delta })
	if c.remaining == 0 && !c.committing && dels != nil {
		*dels = append(*dels, c.commitSeq)
		delete(s.committed, commitSeq)
		u.add(func() { s.committed[commitSeq] = c })
	}
}

// drop removes a live record and all its rows.
func (s *state) drop(id uint64, rec *liveRec, dels *[]int64, u *undoLog) {
	delete(s.live, id)
	u.add(func() { s.live[id] = rec })
	for _, ref := range rec.refs {
		*dels = append(*dels, ref.seq)
		if ref.commit != 0 {
			s.countTx(ref.commit, -1, dels, u)
		}
	}
}

// commit applies an open transaction. It reports whether the commit row
// must be kept: only while rows of the transaction stay in the table.
func (s *state) commit(txID uint64, tx *openTx, seq int64, dels *[]int64, u *undoLog) bool {
	delete(s.open, txID)
	u.add(func() { s.open[txID] = tx })
	c := &committedTx{commitSeq: seq, committing: true}
	s.committed[seq] = c
	u.add(func() { delete(s.committed, seq) })
	for i, op := range tx.ops {
		var e *journal.Entry
		if s.replay {
			e = &tx.entries[i]
		}
		switch op.kind {
		case journal.KindAddTx:
			if s.live[op.id] != nil {
				*dels = append(*dels, op.seq)
				continue
			}
			s.makeLive(op.id, rowRef{seq: op.seq, commit: seq}, e, u)
			c.remaining++ // the undo of the whole committed entry covers this
		case journal.KindUpdateTx:
			rec := s.live[op.id]
			if rec == nil {
				*dels = append(*dels, op.seq)
				continue
			}
			s.addRef(rec, rowRef{seq: op.seq, commit: seq}, e, u)
		case journal.KindDeleteTx:
			*dels = append(*dels, op.seq)
			if rec := s.live[op.id]; rec != nil {
				s.drop(op.id, rec, dels, u)
			}
		}
	}
	*dels = append(*dels, tx.prepareSeqs...)
	c.committing = false
	u.add(func() { c.committing = true })
	if c.remaining == 0 {
		delete(s.committed, seq)
		return false
	}
	return true
}

// forget rolls an open transaction back: all its rows go.
func (s *state) forget(txID uint64, tx *openTx, dels *[]int64, u *undoLog) {
	delete(s.open, txID)
	u.add(func() { s.open[txID] = tx })
	for _, op := range tx.ops {
		*dels = append(*dels, op.seq)
	}
	*dels = append(*dels, tx.prepareSeqs...)
}

// result builds the replay's live records and prepared transactions, and
// returns the rows of unfinished transactions (rolled back) in dels.
func (s *state) result(res *journal.LoadResult, dels *[]int64) {
	for _, r := range s.records {
		if s.live[r.rec.ID] == r {
			res.Records = append(res.Records, *r.rec)
		}
	}
	type prep struct {
		id uint64
		tx *openTx
	}
	var preps []prep
	for id, tx := range s.open {
		if len(tx.prepareSeqs) > 0 {
			preps = append(preps, prep{id, tx})
			continue
		}
		res.RolledBack++
		s.forget(id, tx, dels, nil)
	}
	slices.SortFunc(preps, func(a, b prep) int { return cmp.Compare(a.tx.prepareSeq, b.tx.prepareSeq) })
	for _, p := range preps {
		res.Prepared = append(res.Prepared, journal.PendingTx{TxID: p.id, Data: p.tx.prepareData, Entries: p.tx.entries})
	}
	res.MaxID = max(res.MaxID, s.maxID)
}
