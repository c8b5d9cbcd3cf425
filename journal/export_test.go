package journal

// SetCompactWaitHook sets a function called when a compaction starts
// waiting for the preparer to remove or recycle the segments reclaimed
// before its prefix (tests only).
func SetCompactWaitHook(j *FileJournal, f func()) {
	j.mu.Lock()
	j.testCompactWait = f
	j.mu.Unlock()
}

// SetMaxPending sets how many candidate records a scan keeps waiting at
// once, and returns a function restoring it (tests only).
func SetMaxPending(n int) (restore func()) {
	old := maxPending
	maxPending = n
	return func() { maxPending = old }
}

// BuildScanTables builds the checksum tables a scan builds on first use
// (tests that measure a scan's allocations call it first).
func BuildScanTables() { shiftTables() }
