package journal

// SetCompactWaitHook sets a function called when a compaction starts
// waiting for the preparer to remove or recycle the segments reclaimed
// before its prefix (tests only).
func SetCompactWaitHook(j *FileJournal, f func()) {
	j.mu.Lock()
	j.testCompactWait = f
	j.mu.Unlock()
}
