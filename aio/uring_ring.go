package aio

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The io_uring ABI (include/uapi/linux/io_uring.h), reduced to what the
// journal needs. x/sys/unix has the syscall numbers but not the structures.

const (
	opFsync = 3  // IORING_OP_FSYNC
	opWrite = 23 // IORING_OP_WRITE

	sqeIODrain = 1 << 1 // IOSQE_IO_DRAIN
	sqeIOLink  = 1 << 2 // IOSQE_IO_LINK

	fsyncDatasync = 1 // IORING_FSYNC_DATASYNC

	enterGetEvents = 1 // IORING_ENTER_GETEVENTS

	setupClamp = 1 << 4 // IORING_SETUP_CLAMP

	featSingleMmap = 1 << 0 // IORING_FEAT_SINGLE_MMAP

	offSQRing = 0          // IORING_OFF_SQ_RING
	offCQRing = 0x8000000  // IORING_OFF_CQ_RING
	offSQEs   = 0x10000000 // IORING_OFF_SQES
)

type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqringOffsets
	cqOff                                                                  cqringOffsets
}

type sqe struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	opFlags     uint32 // rw_flags / fsync_flags
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFdIn  int32
	addr3       uint64
	pad2        uint64
}

type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

// Compile-time checks of the ABI sizes.
var (
	_ [120 - unsafe.Sizeof(uringParams{})]struct{}
	_ [unsafe.Sizeof(uringParams{}) - 120]struct{}
	_ [64 - unsafe.Sizeof(sqe{})]struct{}
	_ [unsafe.Sizeof(sqe{}) - 64]struct{}
	_ [16 - unsafe.Sizeof(cqe{})]struct{}
	_ [unsafe.Sizeof(cqe{}) - 16]struct{}
)

// ring is one io_uring instance: its descriptor and the mapped SQ ring, CQ
// ring and SQE array. The SQ side (sqTail, SQEs) belongs to the submitter,
// the CQ side (cqHead) to the reaper; the kernel is the other party of each.
type ring struct {
	fd int

	sqMap, cqMap, sqeMap []byte // cqMap is nil with IORING_FEAT_SINGLE_MMAP

	sqHead, sqTail *uint32
	sqMask         uint32
	sqEntries      uint32
	sqes           []sqe

	cqHead, cqTail *uint32
	cqMask         uint32
	cqEntries      uint32
	cqes           []cqe
}

func uringSetup(entries uint32, p *uringParams) (int, error) {
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

func uringEnter(fd int, toSubmit, minComplete, flags uint32) (int, error) {
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(fd), uintptr(toSubmit),
		uintptr(minComplete), uintptr(flags), 0, 0)
	if errno != 0 {
		return int(n), errno
	}
	return int(n), nil
}

// disabledByEnv reports whether TANDEM_DISABLE_IO_URING asks to behave as if
// the kernel refused io_uring.
func disabledByEnv() bool {
	v := os.Getenv("TANDEM_DISABLE_IO_URING")
	return v != "" && v != "0"
}

// errIOUringDisabled stands for a refusal forced by the option or the
// environment.
var errIOUringDisabled = fmt.Errorf("io_uring disabled by Options.DisableIOUring or TANDEM_DISABLE_IO_URING: %w", unix.EPERM)

// probeIOUring sets up and tears down a tiny ring, so OS can fall back
// before the first OpenAppend.
func probeIOUring(opts Options) error {
	if opts.DisableIOUring || disabledByEnv() {
		return errIOUringDisabled
	}
	r, err := newRing(2)
	if err != nil {
		return err
	}
	return r.close()
}

// newRing creates a ring with at least entries SQEs (the kernel rounds up
// to a power of two, CQ twice that).
func newRing(entries uint32) (*ring, error) {
	var p uringParams
	p.flags = setupClamp
	fd, err := uringSetup(entries, &p)
	if err != nil {
		return nil, fmt.Errorf("io_uring_setup(%d entries): %w", entries, err)
	}
	r := &ring{fd: fd}
	if err := r.mmap(&p); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *ring) mmap(p *uringParams) error {
	sqSize := int(p.sqOff.array) + int(p.sqEntries)*4
	cqSize := int(p.cqOff.cqes) + int(p.cqEntries)*int(unsafe.Sizeof(cqe{}))
	single := p.features&featSingleMmap != 0
	if single && cqSize > sqSize {
		sqSize = cqSize
	}
	prot := unix.PROT_READ | unix.PROT_WRITE
	flags := unix.MAP_SHARED | unix.MAP_POPULATE
	var err error
	if r.sqMap, err = unix.Mmap(r.fd, offSQRing, sqSize, prot, flags); err != nil {
		return fmt.Errorf("mmap io_uring SQ ring: %w", err)
	}
	cqBase := r.sqMap
	if !single {
		if r.cqMap, err = unix.Mmap(r.fd, offCQRing, cqSize, prot, flags); err != nil {
			return fmt.Errorf("mmap io_uring CQ ring: %w", err)
		}
		cqBase = r.cqMap
	}
	sqeSize := int(p.sqEntries) * int(unsafe.Sizeof(sqe{}))
	if r.sqeMap, err = unix.Mmap(r.fd, offSQEs, sqeSize, prot, flags); err != nil {
		return fmt.Errorf("mmap io_uring SQEs: %w", err)
	}

	sq := unsafe.Pointer(unsafe.SliceData(r.sqMap))
	r.sqHead = (*uint32)(unsafe.Add(sq, p.sqOff.head))
	r.sqTail = (*uint32)(unsafe.Add(sq, p.sqOff.tail))
	r.sqMask = *(*uint32)(unsafe.Add(sq, p.sqOff.ringMask))
	r.sqEntries = *(*uint32)(unsafe.Add(sq, p.sqOff.ringEntries))
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(unsafe.SliceData(r.sqeMap))), p.sqEntries)
	// The indirection array maps ring slots to SQE indexes; keep it the
	// identity, so slot i always uses SQE i.
	array := unsafe.Slice((*uint32)(unsafe.Add(sq, p.sqOff.array)), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}

	cq := unsafe.Pointer(unsafe.SliceData(cqBase))
	r.cqHead = (*uint32)(unsafe.Add(cq, p.cqOff.head))
	r.cqTail = (*uint32)(unsafe.Add(cq, p.cqOff.tail))
	r.cqMask = *(*uint32)(unsafe.Add(cq, p.cqOff.ringMask))
	r.cqEntries = *(*uint32)(unsafe.Add(cq, p.cqOff.ringEntries))
	r.cqes = unsafe.Slice((*cqe)(unsafe.Add(cq, p.cqOff.cqes)), p.cqEntries)
	return nil
}

// sqFree returns how many SQEs the submitter may fill now.
func (r *ring) sqFree() uint32 {
	return r.sqEntries - (*r.sqTail - atomic.LoadUint32(r.sqHead))
}

// nextSQE returns the SQE at the local tail+i, zeroed. Only the submitter
// calls it; the SQE becomes visible to the kernel at publish.
func (r *ring) nextSQE(tail uint32) *sqe {
	s := &r.sqes[tail&r.sqMask]
	*s = sqe{}
	return s
}

// publish makes SQEs up to tail visible to the kernel (a release store).
func (r *ring) publish(tail uint32) { atomic.StoreUint32(r.sqTail, tail) }

// reap calls f for every CQE available and consumes them. Only the reaper
// calls it.
func (r *ring) reap(f func(c cqe)) int {
	head := *r.cqHead
	tail := atomic.LoadUint32(r.cqTail)
	n := 0
	for ; head != tail; head++ {
		f(r.cqes[head&r.cqMask])
		n++
	}
	atomic.StoreUint32(r.cqHead, head)
	return n
}

func (r *ring) close() error {
	for _, m := range [][]byte{r.sqeMap, r.cqMap, r.sqMap} {
		if m != nil {
			unix.Munmap(m)
		}
	}
	r.sqeMap, r.cqMap, r.sqMap = nil, nil, nil
	if r.fd >= 0 {
		err := unix.Close(r.fd)
		r.fd = -1
		return err
	}
	return nil
}
