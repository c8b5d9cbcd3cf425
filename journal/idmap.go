package journal

import (
	"math/bits"
	"math/rand/v2"
)

// idMap maps record IDs to their locations: the validator's live set and
// the loader's index. It is an open-addressing table (linear probing,
// backward-shift deletion, so a queue's add/delete churn leaves no
// tombstones behind), a power of two in size, kept between 1/8 and 3/4
// full.
//
// Why not a Go map: on the append path an add is an insert that must
// refuse a live ID and a delete is a lookup that must return the location
// it removes; a Go map needs two operations for the first and two or three
// for the second, this table one probe sequence each. And its hash keeps
// runs of consecutive IDs (the broker allocates them from one counter) in
// consecutive slots: a queue's adds and deletes then walk the table in
// order instead of missing the cache on every record, while the block
// index above the low idBlockBits bits is mixed with a random per-table
// seed, so that no ID pattern costs more than a block's length of probes.
//
// The zero value is an empty map ready for use.
type idMap struct {
	slots  []idSlot
	mask   uint64
	shift  uint8 // 64 - log2(len(slots)/idBlock): the block hash's top bits
	n      int   // keys in slots (key 0 is kept aside)
	seed   uint64
	zero   bool // key 0 is present, at zeroLo
	zeroLo recLoc
}

// idSlot is one slot; key 0 marks it empty.
type idSlot struct {
	key uint64
	loc recLoc
}

const (
	idBlockBits = 4
	idBlock     = 1 << idBlockBits
	idMinSlots  = 4 * idBlock
)

// newIDMap returns a map sized for n keys.
func newIDMap(n int) idMap {
	var m idMap
	m.alloc(slotsFor(n))
	return m
}

func slotsFor(n int) int {
	size := idMinSlots
	for size/4*3 < n {
		size <<= 1
	}
	return size
}

func (m *idMap) alloc(size int) {
	m.slots = make([]idSlot, size)
	m.mask = uint64(size - 1)
	m.shift = uint8(64 - (bits.TrailingZeros(uint(size)) - idBlockBits))
	m.n = 0
	if m.seed == 0 {
		m.seed = rand.Uint64() | 1
	}
}

// home is key's first slot: the low idBlockBits bits of the ID stay, the
// block number above them is hashed (Fibonacci hashing of the seeded
// block number).
func (m *idMap) home(key uint64) uint64 {
	h := ((key>>idBlockBits ^ m.seed) * 0x9e3779b97f4a7c15) >> m.shift
	return (h<<idBlockBits | key&(idBlock-1)) & m.mask
}

// len returns the number of keys.
func (m *idMap) len() int {
	if m.zero {
		return m.n + 1
	}
	return m.n
}

// get returns key's location.
func (m *idMap) get(key uint64) (recLoc, bool) {
	if key == 0 {
		return m.zeroLo, m.zero
	}
	if m.n == 0 {
		return recLoc{}, false
	}
	for i := m.home(key); ; i = (i + 1) & m.mask {
		s := &m.slots[i]
		if s.key == key {
			return s.loc, true
		}
		if s.key == 0 {
			return recLoc{}, false
		}
	}
}

// ref returns a pointer to key's location, valid until the next insert,
// set or remove, or nil when key is missing.
func (m *idMap) ref(key uint64) *recLoc {
	if key == 0 {
		if m.zero {
			return &m.zeroLo
		}
		return nil
	}
	if m.n == 0 {
		return nil
	}
	for i := m.home(key); ; i = (i + 1) & m.mask {
		s := &m.slots[i]
		if s.key == key {
			return &s.loc
		}
		if s.key == 0 {
			return nil
		}
	}
}

// has reports whether key is present.
func (m *idMap) has(key uint64) bool {
	_, ok := m.get(key)
	return ok
}

// insert adds key with loc unless key is present; it reports whether it
// did (a present key keeps its location).
func (m *idMap) insert(key uint64, loc recLoc) bool {
	if key == 0 {
		if m.zero {
			return false
		}
		m.zero, m.zeroLo = true, loc
		return true
	}
	if m.n >= len(m.slots)/4*3 {
		m.resize(max(2*len(m.slots), idMinSlots))
	}
	for i := m.home(key); ; i = (i + 1) & m.mask {
		s := &m.slots[i]
		if s.key == key {
			return false
		}
		if s.key == 0 {
			s.key, s.loc = key, loc
			m.n++
			return true
		}
	}
}

// set sets key's location, adding key if it is missing.
func (m *idMap) set(key uint64, loc recLoc) {
	if key == 0 {
		m.zero, m.zeroLo = true, loc
		return
	}
	if m.n > 0 {
		for i := m.home(key); ; i = (i + 1) & m.mask {
			s := &m.slots[i]
			if s.key == key {
				s.loc = loc
				return
			}
			if s.key == 0 {
				break
			}
		}
	}
	m.insert(key, loc)
}

// remove deletes key and returns the location it had.
func (m *idMap) remove(key uint64) (recLoc, bool) {
	if key == 0 {
		loc, ok := m.zeroLo, m.zero
		m.zero, m.zeroLo = false, recLoc{}
		return loc, ok
	}
	if m.n == 0 {
		return recLoc{}, false
	}
	i := m.home(key)
	for ; ; i = (i + 1) & m.mask {
		s := &m.slots[i]
		if s.key == key {
			break
		}
		if s.key == 0 {
			return recLoc{}, false
		}
	}
	loc := m.slots[i].loc
	// Backward shift: move later keys of the run into the hole when their
	// home is not between the hole and them, so every key stays reachable
	// from its home without passing an empty slot.
	for j := (i + 1) & m.mask; ; j = (j + 1) & m.mask {
		s := &m.slots[j]
		if s.key == 0 {
			break
		}
		if (j-m.home(s.key))&m.mask >= (j-i)&m.mask {
			m.slots[i] = *s
			i = j
		}
	}
	m.slots[i] = idSlot{}
	m.n--
	if len(m.slots) > idMinSlots && m.n < len(m.slots)/8 {
		m.resize(len(m.slots) / 2)
	}
	return loc, true
}

func (m *idMap) resize(size int) {
	old := m.slots
	m.alloc(size)
	for i := range old {
		if s := &old[i]; s.key != 0 {
			j := m.home(s.key)
			for m.slots[j].key != 0 {
				j = (j + 1) & m.mask
			}
			m.slots[j] = *s
			m.n++
		}
	}
}

// each calls f with every key and a pointer to its location, which f may
// change; f must not add or remove keys.
func (m *idMap) each(f func(id uint64, loc *recLoc)) {
	if m.zero {
		f(0, &m.zeroLo)
	}
	for i := range m.slots {
		if s := &m.slots[i]; s.key != 0 {
			f(s.key, &s.loc)
		}
	}
}

// clone returns an independent copy.
func (m *idMap) clone() idMap {
	c := *m
	c.slots = append([]idSlot(nil), m.slots...)
	return c
}
