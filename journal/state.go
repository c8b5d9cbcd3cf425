package journal

import (
	"errors"
	"fmt"
	"slices"
)

// ErrInvalidEntry is returned by Append for an entry whose Kind is unknown.
var ErrInvalidEntry = errors.New("journal: invalid entry kind")

// errPrepared is wrapped with ErrUnknownTx when an entry other than commit
// or rollback names a prepared transaction.
const msgPrepared = "transaction is prepared: only commit or rollback may follow"

// recLoc says where a live record's add was written: the segment sequence
// (0 for the memory journal). Reclaim and compaction use it to count the
// live records of each segment.
type recLoc struct {
	seg uint64
	idx int32 // during replay: index of the record in the loader's list
	// size is the encoded size of the add and of every update since
	// (saturating): the record's live bytes, counted in its add's segment.
	size uint32
}

// grow adds n update bytes to loc's size, saturating, and returns how many
// it added.
func (loc *recLoc) grow(n int) uint32 {
	d := uint32(min(uint64(n), uint64(^uint32(0)-loc.size)))
	loc.size += d
	return d
}

// txOp is one transactional entry of an open transaction, as the validator
// keeps it: enough to apply the commit to the live set and to account for
// segments, never the data.
type txOp struct {
	kind Kind
	id   uint64
	seg  uint64
	size uint32
}

type txState struct {
	prepared bool
	firstSeg uint64 // segment of the first entry: the transaction pins it
	ops      []txOp
}

type undoKind uint8

const (
	undoLiveAdded   undoKind = iota // a live entry was added: delete it
	undoLiveDeleted                 // a live entry was deleted: restore loc
	undoTxCreated                   // a transaction was created: delete it
	undoTxOps                       // ops were appended: truncate to n
	undoTxPrepared                  // prepared was set: clear it
	undoTxRemoved                   // a transaction was removed: restore tx
	undoLiveGrown                   // update bytes were counted: take n back
)

type undo struct {
	k   undoKind
	id  uint64
	loc recLoc
	tx  *txState
	n   int
}

// validator is the append-side state machine shared by every
// implementation in this package: which records are live and which
// transactions are open, so Append can refuse invalid requests before
// anything is written. It holds IDs and locations, never record data.
//
// apply is all-or-nothing: when an entry fails, the effects of the earlier
// entries of the same call are undone.
//
// It also counts, per segment, the live records added there and the open
// transactions that started there (pins): reclaim removes the oldest
// segments while they pin nothing. Updates, deletes and transaction ends
// never need a pin: they are in the record's add segment or later, and
// reclaim only ever removes the oldest segment.
type validator struct {
	live  idMap
	txs   map[uint64]*txState
	pins  pinCounts
	undo  []undo
	maxID uint64
}

func (v *validator) pin(seg uint64, d int) { v.pins.add(seg, d) }

// count adds d live records of loc's size to loc's segment.
func (v *validator) count(loc recLoc, d int) { v.pins.addLive(loc.seg, d, int64(d)*int64(loc.size)) }

// pinCounts counts pins per segment. Segment sequences are dense, so a
// slice indexed from the oldest segment beats a map on the append path.
type pinCounts struct {
	base   uint64
	counts []int32
	bytes  []int64 // live add bytes per segment (compaction's estimate)
}

func (p *pinCounts) add(seg uint64, d int) {
	p.counts[p.slot(seg)] += int32(d)
}

// addLive is add and addBytes with one slot lookup.
func (p *pinCounts) addLive(seg uint64, d int, bytes int64) {
	i := p.slot(seg)
	p.counts[i] += int32(d)
	p.bytes[i] += bytes
}

// slot returns seg's index, growing the slices to hold it.
func (p *pinCounts) slot(seg uint64) int {
	if len(p.counts) == 0 {
		p.base = seg
	}
	if seg < p.base {
		n := int(p.base - seg)
		p.counts = append(make([]int32, n, n+len(p.counts)), p.counts...)
		p.bytes = append(make([]int64, n, n+len(p.bytes)), p.bytes...)
		p.base = seg
	}
	i := int(seg - p.base)
	for i >= len(p.counts) {
		p.counts = append(p.counts, 0)
		p.bytes = append(p.bytes, 0)
	}
	return i
}

// liveBytes sums the live add bytes of segments [from, to).
func (p *pinCounts) liveBytes(from, to uint64) int64 {
	var n int64
	for seg := max(from, p.base); seg < to && seg-p.base < uint64(len(p.bytes)); seg++ {
		n += p.bytes[seg-p.base]
	}
	return n
}

func (p *pinCounts) get(seg uint64) int {
	if seg < p.base || seg-p.base >= uint64(len(p.counts)) {
		return 0
	}
	return int(p.counts[seg-p.base])
}

// trim forgets the counts of segments before seg (all zero: reclaimed).
func (p *pinCounts) trim(seg uint64) {
	if seg > p.base {
		n := min(int(seg-p.base), len(p.counts))
		p.counts = p.counts[n:]
		p.bytes = p.bytes[n:]
		p.base += uint64(n)
	}
}

func newValidator() *validator {
	return &validator{txs: make(map[uint64]*txState)}
}

// apply validates entries in order against the current state and applies
// them, locating their writes in segment seg. On error nothing changes.
func (v *validator) apply(entries []Entry, seg uint64) error {
	v.undo = v.undo[:0]
	oldMax := v.maxID
	for i := range entries {
		if err := v.applyOne(&entries[i], seg); err != nil {
			v.rollback()
			v.maxID = oldMax
			if len(entries) > 1 {
				return fmt.Errorf("entry %d (%s id %d tx %d): %w", i, entries[i].Kind, entries[i].ID, entries[i].TxID, err)
			}
			return err
		}
	}
	return nil
}

func (v *validator) rollback() {
	for i := len(v.undo) - 1; i >= 0; i-- {
		u := &v.undo[i]
		switch u.k {
		case undoLiveAdded:
			v.live.remove(u.id)
			v.count(u.loc, -1)
		case undoLiveDeleted:
			v.live.set(u.id, u.loc)
			v.count(u.loc, +1)
		case undoTxCreated:
			v.pin(v.txs[u.id].firstSeg, -1)
			delete(v.txs, u.id)
		case undoTxOps:
			u.tx.ops = u.tx.ops[:u.n]
		case undoTxPrepared:
			u.tx.prepared = false
		case undoTxRemoved:
			v.txs[u.id] = u.tx
			v.pin(u.tx.firstSeg, +1)
		case undoLiveGrown:
			loc := v.live.ref(u.id)
			loc.size -= uint32(u.n)
			v.pins.addLive(loc.seg, 0, -int64(u.n))
		}
	}
	v.undo = v.undo[:0]
}

// addLive makes id live at loc unless it is live already, and reports
// whether it did.
func (v *validator) addLive(id uint64, loc recLoc) bool {
	if !v.live.insert(id, loc) {
		return false
	}
	v.count(loc, +1)
	v.undo = append(v.undo, undo{k: undoLiveAdded, id: id, loc: loc})
	return true
}

// updLive counts an update of n bytes into live record id's bytes, and
// reports whether id is live.
func (v *validator) updLive(id uint64, n int) bool {
	loc := v.live.ref(id)
	if loc == nil {
		return false
	}
	if d := loc.grow(n); d > 0 {
		v.pins.addLive(loc.seg, 0, int64(d))
		v.undo = append(v.undo, undo{k: undoLiveGrown, id: id, n: int(d)})
	}
	return true
}

// delLive removes id from the live set, and reports whether it was live.
func (v *validator) delLive(id uint64) bool {
	loc, ok := v.live.remove(id)
	if !ok {
		return false
	}
	v.count(loc, -1)
	v.undo = append(v.undo, undo{k: undoLiveDeleted, id: id, loc: loc})
	return true
}

// openTx returns the transaction txID, creating it when create is true.
func (v *validator) openTx(txID uint64, create bool, seg uint64) (*txState, error) {
	tx := v.txs[txID]
	if tx == nil {
		if !create {
			return nil, ErrUnknownTx
		}
		tx = &txState{firstSeg: seg}
		v.txs[txID] = tx
		v.pin(seg, +1)
		v.undo = append(v.undo, undo{k: undoTxCreated, id: txID})
	}
	return tx, nil
}

func (v *validator) removeTx(txID uint64, tx *txState) {
	delete(v.txs, txID)
	v.pin(tx.firstSeg, -1)
	v.undo = append(v.undo, undo{k: undoTxRemoved, id: txID, tx: tx})
}

func addedIn(tx *txState, id uint64) bool {
	for i := len(tx.ops) - 1; i >= 0; i-- {
		if tx.ops[i].id == id {
			return tx.ops[i].kind != KindDeleteTx
		}
	}
	return false
}

func (v *validator) applyOne(e *Entry, seg uint64) error {
	if !e.Kind.Valid() {
		return fmt.Errorf("%w: %d", ErrInvalidEntry, uint8(e.Kind))
	}
	if e.Kind.Transactional() {
		v.maxID = max(v.maxID, e.TxID)
	}
	switch e.Kind {
	case KindAdd, KindUpdate, KindDelete, KindAddTx, KindUpdateTx, KindDeleteTx:
		v.maxID = max(v.maxID, e.ID)
	}
	switch e.Kind {
	case KindAdd:
		if !v.addLive(e.ID, recLoc{seg: seg, size: uint32(entrySize(e))}) {
			return ErrDuplicateRecord
		}
	case KindUpdate:
		if !v.updLive(e.ID, entrySize(e)) {
			return ErrUnknownRecord
		}
	case KindDelete:
		if !v.delLive(e.ID) {
			return ErrUnknownRecord
		}
	case KindAddTx, KindUpdateTx, KindDeleteTx:
		tx, _ := v.openTx(e.TxID, true, seg)
		if tx.prepared {
			return fmt.Errorf("%w: %s", ErrUnknownTx, msgPrepared)
		}
		live := v.live.has(e.ID)
		switch {
		case e.Kind == KindAddTx && (live || addedIn(tx, e.ID)):
			return ErrDuplicateRecord
		case e.Kind != KindAddTx && !live && !addedIn(tx, e.ID):
			return ErrUnknownRecord
		}
		v.undo = append(v.undo, undo{k: undoTxOps, tx: tx, n: len(tx.ops)})
		tx.ops = append(tx.ops, txOp{kind: e.Kind, id: e.ID, seg: seg, size: uint32(entrySize(e))})
	case KindPrepare:
		tx, err := v.openTx(e.TxID, false, 0)
		if err != nil {
			return err
		}
		if tx.prepared {
			return fmt.Errorf("%w: already prepared", ErrUnknownTx)
		}
		tx.prepared = true
		v.undo = append(v.undo, undo{k: undoTxPrepared, tx: tx})
	case KindCommit:
		tx, err := v.openTx(e.TxID, false, 0)
		if err != nil {
			return err
		}
		// Check the whole transaction against the live set before
		// changing it, so a conflicting commit is refused as a unit.
		for _, op := range tx.ops {
			if op.kind == KindAddTx {
				if v.live.has(op.id) {
					return fmt.Errorf("%w: commit adds record %d", ErrDuplicateRecord, op.id)
				}
			}
		}
		for _, op := range tx.ops {
			switch op.kind {
			case KindAddTx:
				v.addLive(op.id, recLoc{seg: op.seg, size: op.size})
			case KindUpdateTx:
				v.updLive(op.id, int(op.size))
			case KindDeleteTx:
				v.delLive(op.id)
			}
		}
		v.removeTx(e.TxID, tx)
	case KindRollback:
		tx, err := v.openTx(e.TxID, false, 0)
		if err != nil {
			return err
		}
		v.removeTx(e.TxID, tx)
	}
	return nil
}

// loader is the replay-side state machine: it applies entries in journal
// order and builds the LoadResult. Every implementation replays through it,
// so they agree on what a sequence of entries means. It is lenient where
// the validator is strict (an update of a record that is not live is
// ignored, a second add of a live ID is ignored), so replay of any valid
// record sequence never fails.
//
// Entry data is kept as given (not copied): the file journal slices it out
// of its read buffers. The index of live records becomes the validator's
// live set at the end, so replay builds one map, not two.
type loader struct {
	recs    []Record
	dead    []bool
	index   idMap
	txs     map[uint64]*loadTx
	prepSeq []uint64 // transaction IDs in the order of their prepares
	slab    []Update // first updates of records are carved from here
	maxID   uint64
	// firstSeg and curSeg let replay size the loader after its first
	// segment.
	firstSeg, curSeg uint64
	ndead            int
}

type loadTx struct {
	entries  []Entry
	segs     []uint64
	prepared bool
	data     []byte
	// prepAt is the index in prepSeq of this transaction's prepare. A
	// transaction ID can be prepared, ended and prepared again, so prepSeq
	// may name an ID more than once: only the entry at prepAt counts.
	prepAt int
}

func newLoader() *loader {
	return &loader{txs: make(map[uint64]*loadTx)}
}

// add applies an add (size: its encoded size).
func (l *loader) add(id uint64, typ uint8, data []byte, seg uint64, size int) {
	// A second add of a live ID (the validator never writes one) is
	// ignored: the first add stays, with its location.
	if !l.index.insert(id, recLoc{seg: seg, idx: int32(len(l.recs)), size: uint32(size)}) {
		return
	}
	l.recs = append(l.recs, Record{ID: id, Type: typ, Data: data})
	l.dead = append(l.dead, false)
}

// reserve sizes the loader for about n records.
func (l *loader) reserve(n int) {
	if n <= len(l.recs) || n > 1<<26 {
		return
	}
	idx := newIDMap(n)
	l.index.each(func(id uint64, loc *recLoc) { idx.insert(id, *loc) })
	l.index = idx
	l.recs = append(make([]Record, 0, n), l.recs...)
	l.dead = append(make([]bool, 0, n), l.dead...)
}

// update applies an update (size: its encoded size).
func (l *loader) update(id uint64, typ uint8, data []byte, size int) {
	loc := l.index.ref(id)
	if loc == nil {
		return
	}
	loc.grow(size)
	r := &l.recs[loc.idx]
	if r.Updates == nil {
		if len(l.slab) == 0 {
			l.slab = make([]Update, 4096)
		}
		r.Updates = l.slab[:0:1]
		l.slab = l.slab[1:]
	}
	r.Updates = append(r.Updates, Update{Type: typ, Data: data})
}

func (l *loader) delete(id uint64) {
	if loc, ok := l.index.remove(id); ok {
		l.dead[loc.idx] = true
		l.recs[loc.idx] = Record{}
		l.ndead++
	}
}

// apply applies one entry found in segment seg.
func (l *loader) apply(e *Entry, seg uint64) {
	if e.Kind.Transactional() {
		l.maxID = max(l.maxID, e.TxID)
	}
	switch e.Kind {
	case KindAdd, KindUpdate, KindDelete, KindAddTx, KindUpdateTx, KindDeleteTx:
		l.maxID = max(l.maxID, e.ID)
	}
	switch e.Kind {
	case KindAdd:
		l.add(e.ID, e.Type, e.Data, seg, entrySize(e))
	case KindUpdate:
		l.update(e.ID, e.Type, e.Data, entrySize(e))
	case KindDelete:
		l.delete(e.ID)
	case KindAddTx, KindUpdateTx, KindDeleteTx:
		tx := l.txs[e.TxID]
		if tx == nil {
			tx = &loadTx{}
			l.txs[e.TxID] = tx
		}
		tx.entries = append(tx.entries, *e)
		tx.segs = append(tx.segs, seg)
	case KindPrepare:
		tx := l.txs[e.TxID]
		if tx == nil || tx.prepared {
			return
		}
		tx.prepared = true
		tx.data = e.Data
		tx.prepAt = len(l.prepSeq)
		l.prepSeq = append(l.prepSeq, e.TxID)
	case KindCommit:
		tx := l.txs[e.TxID]
		if tx == nil {
			return
		}
		delete(l.txs, e.TxID)
		for i := range tx.entries {
			te := &tx.entries[i]
			switch te.Kind {
			case KindAddTx:
				l.add(te.ID, te.Type, te.Data, tx.segs[i], entrySize(te))
			case KindUpdateTx:
				l.update(te.ID, te.Type, te.Data, entrySize(te))
			case KindDeleteTx:
				l.delete(te.ID)
			}
		}
	case KindRollback:
		delete(l.txs, e.TxID)
	}
}

// finish builds the LoadResult, the validator that continues from it, and
// the IDs of the unfinished transactions (entries, no prepare, no end),
// which the caller must roll back by appending rollback entries.
func (l *loader) finish() (*LoadResult, *validator, []uint64) { return l.build(true) }

// snapshot is finish without consuming the loader: the memory store keeps
// applying entries to it afterwards.
func (l *loader) snapshot() (*LoadResult, *validator, []uint64) { return l.build(false) }

func (l *loader) build(consume bool) (*LoadResult, *validator, []uint64) {
	res := &LoadResult{MaxID: l.maxID}
	live := l.index
	if !consume {
		live = l.index.clone()
	}
	v := &validator{live: live, txs: make(map[uint64]*txState), maxID: l.maxID}
	live.each(func(_ uint64, loc *recLoc) { v.count(*loc, +1) })
	if l.ndead == 0 && consume {
		res.Records = l.recs
	} else {
		res.Records = make([]Record, 0, len(l.recs)-l.ndead)
		for i := range l.recs {
			if !l.dead[i] {
				res.Records = append(res.Records, l.recs[i])
			}
		}
	}
	if consume {
		l.recs, l.dead, l.index = nil, nil, idMap{}
	}
	for i, id := range l.prepSeq {
		tx := l.txs[id]
		if tx == nil || !tx.prepared || tx.prepAt != i {
			continue // ended, or prepared again later (listed there)
		}
		entries := tx.entries
		if !consume {
			entries = slices.Clone(entries)
		}
		res.Prepared = append(res.Prepared, PendingTx{TxID: id, Data: tx.data, Entries: entries})
		ts := &txState{prepared: true, firstSeg: tx.segs[0], ops: make([]txOp, len(tx.entries))}
		v.pins.add(ts.firstSeg, 1)
		for i := range tx.entries {
			ts.ops[i] = txOp{kind: tx.entries[i].Kind, id: tx.entries[i].ID, seg: tx.segs[i], size: uint32(entrySize(&tx.entries[i]))}
		}
		v.txs[id] = ts
	}
	var unfinished []uint64
	for id, tx := range l.txs {
		if !tx.prepared {
			unfinished = append(unfinished, id)
			// Known to the validator until the caller's rollback ends it.
			ts := &txState{firstSeg: tx.segs[0], ops: make([]txOp, len(tx.entries))}
			v.pins.add(ts.firstSeg, 1)
			for i := range tx.entries {
				ts.ops[i] = txOp{kind: tx.entries[i].Kind, id: tx.entries[i].ID, seg: tx.segs[i], size: uint32(entrySize(&tx.entries[i]))}
			}
			v.txs[id] = ts
		}
	}
	slices.Sort(unfinished)
	res.RolledBack = len(unfinished)
	return res, v, unfinished
}

var errLoadTwice = errors.New("journal: Load called twice")

// compactDead drops deleted records from the loader's list once they are
// most of it, and forgets ended prepares (the memory store, which keeps
// its loader for ever, calls it after each append).
func (l *loader) compactDead() {
	if l.ndead > 1024 && l.ndead > len(l.recs)/2 {
		recs := make([]Record, 0, len(l.recs)-l.ndead)
		for i := range l.recs {
			if !l.dead[i] {
				loc, _ := l.index.get(l.recs[i].ID)
				loc.idx = int32(len(recs))
				l.index.set(l.recs[i].ID, loc)
				recs = append(recs, l.recs[i])
			}
		}
		l.recs, l.dead, l.ndead = recs, make([]bool, len(recs)), 0
	}
	if len(l.prepSeq) > 64 && len(l.prepSeq) > 2*len(l.txs) {
		keep := l.prepSeq[:0]
		for i, id := range l.prepSeq {
			if tx := l.txs[id]; tx != nil && tx.prepared && tx.prepAt == i {
				tx.prepAt = len(keep)
				keep = append(keep, id)
			}
		}
		l.prepSeq = keep
	}
}
