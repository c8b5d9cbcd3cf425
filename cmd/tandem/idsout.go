package main

import (
	"bufio"
	"fmt"
	"os"
)

// idsWriter writes ID lines (--ids-out) from one goroutine: callers hand
// lines over a channel (never blocking the client's reader for long), and
// the file is flushed whenever no line is waiting, so each line reaches the
// file as soon as its acknowledgement arrived and nothing else is queued.
type idsWriter struct {
	f    *os.File
	w    *bufio.Writer
	ch   chan string
	done chan error
}

func newIDsWriter(path string) (*idsWriter, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	iw := &idsWriter{f: f, w: bufio.NewWriterSize(f, 64<<10), ch: make(chan string, 1<<16), done: make(chan error, 1)}
	go iw.loop()
	return iw, nil
}

func (iw *idsWriter) loop() {
	var err error
	for line := range iw.ch {
		if err == nil {
			_, err = iw.w.WriteString(line)
		}
		if err == nil {
			err = iw.w.WriteByte('\n')
		}
		if err == nil && len(iw.ch) == 0 {
			err = iw.w.Flush()
		}
	}
	if err == nil {
		err = iw.w.Flush()
	}
	if cerr := iw.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		err = fmt.Errorf("--ids-out %s: %w", iw.f.Name(), err)
	}
	iw.done <- err
}

// add queues one line; safe on a nil writer.
func (iw *idsWriter) add(line string) {
	if iw != nil {
		iw.ch <- line
	}
}

// close flushes and closes the file.
func (iw *idsWriter) close() error {
	if iw == nil {
		return nil
	}
	close(iw.ch)
	return <-iw.done
}
