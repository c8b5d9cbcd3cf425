package aio

import "errors"

// Placeholder until the io_uring backend lands: always refuse, so OS falls
// back to Direct.
func probeIOUring(opts Options) error { return errors.New("io_uring backend not built yet") }

func openURing(name string, opts Options) (File, error) { return openPwrite(name, true, opts) }
