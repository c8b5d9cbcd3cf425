package lockfile

import (
	"errors"
	"io"

	"golang.org/x/sys/unix"
)

// ofdSetlk places (or with typ F_UNLCK removes) a whole-file OFD lock
// without waiting. It reports busy (and no error) when another open file
// description holds a conflicting lock.
func ofdSetlk(fd int, typ int16) (busy bool, err error) {
	lk := unix.Flock_t{Type: typ, Whence: io.SeekStart}
	for {
		err = unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return true, nil
	}
	return false, err
}

// ofdSetlkw waits for a whole-file OFD lock (used only for the short
// critical sections on server.lock).
func ofdSetlkw(fd int, typ int16) error {
	lk := unix.Flock_t{Type: typ, Whence: io.SeekStart}
	for {
		err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLKW, &lk)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// ofdConflict asks whether a whole-file lock of type typ could be placed on
// fd. It returns the conflicting lock's type (F_UNLCK when there is none)
// and, for a classic POSIX lock holder, its pid (-1 for an OFD holder).
func ofdConflict(fd int, typ int16) (int16, int32, error) {
	lk := unix.Flock_t{Type: typ, Whence: io.SeekStart}
	for {
		err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return lk.Type, lk.Pid, err
	}
}
