package aio

import "golang.org/x/sys/unix"

// MinDirectAlign is the smallest alignment Tandem uses with O_DIRECT, even
// where statx reports 512: 4096 is safe on 4Kn devices and matches pages.
const MinDirectAlign = 4096

// dioAlignment returns the alignment O_DIRECT writes on fd need: the larger
// of statx's STATX_DIOALIGN memory and offset alignments, at least
// MinDirectAlign. Without STATX_DIOALIGN support it is MinDirectAlign.
func dioAlignment(fd int) int {
	var st unix.Statx_t
	align := MinDirectAlign
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &st); err != nil {
		return align
	}
	if st.Mask&unix.STATX_DIOALIGN == 0 {
		return align
	}
	for _, a := range []uint32{st.Dio_mem_align, st.Dio_offset_align} {
		if int(a) > align {
			align = int(a)
		}
	}
	return align
}
