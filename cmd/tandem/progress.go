package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progressEvery is how often a progress line is redrawn.
const progressEvery = 500 * time.Millisecond

// startProgress redraws line() in place every progressEvery on f while f
// is a terminal (as `tandem bench` does), so a long producer or consumer
// run shows where it is. stop clears the line and returns once the
// drawing goroutine has ended; it is a no-op when f is not a terminal.
func startProgress(f *os.File, line func() string) (stop func()) {
	if !isTerminal(f) {
		return func() {}
	}
	return runProgress(f, progressEvery, line)
}

// runProgress draws line() on w every period until stop.
func runProgress(w io.Writer, period time.Duration, line func() string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		last := 0
		for {
			select {
			case <-t.C:
				s := line()
				fmt.Fprintf(w, "\r%s%s", s, strings.Repeat(" ", max(last-len(s), 0)))
				last = len(s)
			case <-done:
				if last > 0 {
					fmt.Fprint(w, "\r"+strings.Repeat(" ", last)+"\r")
				}
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}
