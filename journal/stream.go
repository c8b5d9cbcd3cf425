package journal

// streamFloorLocked is the oldest segment a record stream subscriber still
// needs (no subscriber: no limit).
func (j *FileJournal) streamFloorLocked() uint64 { return ^uint64(0) }

func (j *FileJournal) streamMetricsLocked() (int, int64) { return 0, 0 }
