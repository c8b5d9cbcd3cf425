package server

// refDeque is a ring-buffer double-ended queue of message references. It
// counts the references it holds whose delivery is delayed (notBefore
// set), so dispatch knows when it must look past the head.
type refDeque struct {
	buf     []*ref
	head    int
	n       int
	delayed int
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
	if r.notBefore != 0 {
		d.delayed++
	}
}

func (d *refDeque) pushFront(r *ref) {
	if d.n == len(d.buf) {
		d.grow()
	}
	d.head = (d.head - 1 + len(d.buf)) % len(d.buf)
	d.buf[d.head] = r
	d.n++
	if r.notBefore != 0 {
		d.delayed++
	}
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
	if r.notBefore != 0 {
		d.delayed--
	}
	return r
}

// filter walks the references from the head and keeps, in order, those
// for which f returns keep; once f returns stop, the rest are kept
// without being examined. A reference f does not keep leaves d (its
// delay count with it).
func (d *refDeque) filter(f func(r *ref) (keep, stop bool)) {
	size := len(d.buf)
	w, i := 0, 0
	for i < d.n {
		r := d.buf[(d.head+i)%size]
		i++
		k, stop := f(r)
		if k {
			d.buf[(d.head+w)%size] = r
			w++
		} else if r.notBefore != 0 {
			d.delayed--
		}
		if stop {
			break
		}
	}
	if w == i {
		return
	}
	for ; i < d.n; i++ {
		d.buf[(d.head+w)%size] = d.buf[(d.head+i)%size]
		w++
	}
	for j := w; j < d.n; j++ {
		d.buf[(d.head+j)%size] = nil
	}
	d.n = w
	if d.n == 0 {
		d.head = 0
	}
}
