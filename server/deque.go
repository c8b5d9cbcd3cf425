package server

// refDeque is a ring-buffer double-ended queue of message references.
type refDeque struct {
	buf  []*ref
	head int
	n    int
}

func (d *refDeque) len() int { return d.n }

func (d *refDeque) grow() {
	nb := make([]*ref, max(16, 2*len(d.buf)))
	for i := 0; i < d.n; i++ {
		nb[i] = d.buf[(d.head+i)%len(d.buf)]
	}
	d.buf = nb
	d.head = 0
}

func (d *refDeque) pushBack(r *ref) {
	if d.n == len(d.buf) {
		d.grow()
	}
	d.buf[(d.head+d.n)%len(d.buf)] = r
	d.n++
}

func (d *refDeque) pushFront(r *ref) {
	if d.n == len(d.buf) {
		d.grow()
	}
	d.head = (d.head - 1 + len(d.buf)) % len(d.buf)
	d.buf[d.head] = r
	d.n++
}

func (d *refDeque) popFront() *ref {
	if d.n == 0 {
		return nil
	}
	r := d.buf[d.head]
	d.buf[d.head] = nil
	d.head = (d.head + 1) % len(d.buf)
	d.n--
	if d.n == 0 {
		d.head = 0
	}
	return r
}
