package aio

import (
	"fmt"
	"unsafe"
)

// AlignedBuffer returns a zeroed slice of length and capacity n whose first
// byte's address is a multiple of align (a power of two; values below 1
// mean 1). It over-allocates by align bytes and slices at the first aligned
// address. Go's garbage collector does not move heap objects, so the
// address stays aligned for the buffer's life.
func AlignedBuffer(n, align int) []byte {
	if align < 1 {
		align = 1
	}
	if align&(align-1) != 0 {
		panic(fmt.Sprintf("aio: AlignedBuffer: alignment %d is not a power of two", align))
	}
	if n < 0 {
		panic(fmt.Sprintf("aio: AlignedBuffer: negative length %d", n))
	}
	raw := make([]byte, n+align)
	skip := 0
	if rem := int(uintptr(unsafe.Pointer(unsafe.SliceData(raw))) & uintptr(align-1)); rem != 0 {
		skip = align - rem
	}
	return raw[skip : skip+n : skip+n]
}

// checkAligned reports an *AlignmentError when p's address, len(p) or off
// is not a multiple of align. An empty p is rejected too: a zero-length
// write would complete without writing anything the caller expects.
func checkAligned(name string, p []byte, off int64, align int) error {
	if len(p) == 0 {
		return &AlignmentError{File: name, Offset: off, Length: 0, Align: align, What: "empty buffer"}
	}
	if align <= 1 {
		return nil
	}
	a := uintptr(align - 1)
	switch {
	case uintptr(off)&a != 0:
		return &AlignmentError{File: name, Offset: off, Length: len(p), Align: align, What: "offset"}
	case uintptr(len(p))&a != 0:
		return &AlignmentError{File: name, Offset: off, Length: len(p), Align: align, What: "length"}
	case uintptr(unsafe.Pointer(unsafe.SliceData(p)))&a != 0:
		return &AlignmentError{File: name, Offset: off, Length: len(p), Align: align, What: "buffer address"}
	}
	return nil
}
