package server

import (
	"slices"
	"strings"
)

// PagingStatus is /status's "paging" object: the memory messages take
// against global-max-size, the paging journal, and every address that
// pages, holds paged messages or holds blocked sends.
type PagingStatus struct {
	// MemoryBytes is what messages in memory take (as counted against
	// the limits); GlobalMaxSize is the limit (0: none).
	MemoryBytes   int64 `json:"memory_bytes"`
	GlobalMaxSize int64 `json:"global_max_size"`
	// Segments counts the paging journal's segment files in use (0
	// without one).
	Segments  int             `json:"segments"`
	Addresses []AddressPaging `json:"addresses"`
}

// AddressPaging is one address's memory and paged messages.
type AddressPaging struct {
	Address string `json:"address"`
	// Paging: new messages go to the paging journal.
	Paging      bool  `json:"paging"`
	MemoryBytes int64 `json:"memory_bytes"`
	// MaxSizeBytes is its max-size-bytes (-1: none of its own).
	MaxSizeBytes int64  `json:"max_size_bytes"`
	Policy       string `json:"address_full_policy"`
	// PagedMessages and PagedBytes count its queues' paged messages not
	// read into memory yet (a message of two queues counts twice);
	// PageFiles the paging journal's segment files they span.
	PagedMessages int64 `json:"paged_messages"`
	PagedBytes    int64 `json:"paged_bytes"`
	PageFiles     int   `json:"page_files"`
	// BlockedSends counts the sends BLOCK holds now.
	BlockedSends int `json:"blocked_sends"`
}

// Paging describes paging now (see PagingStatus).
func (s *Server) Paging() PagingStatus {
	ps := PagingStatus{MemoryBytes: s.mem.Load(), GlobalMaxSize: max(s.globalMax, 0), Addresses: []AddressPaging{}}
	var end uint64
	if s.pages != nil {
		end = s.pages.DurableEnd().Seq
		ps.Segments = int(end - s.pages.Oldest() + 1)
	}
	s.mu.RLock()
	as := make([]*address, 0, len(s.addresses))
	for _, a := range s.addresses {
		as = append(as, a)
	}
	s.mu.RUnlock()
	for _, a := range as {
		ap := a.pagingInfo(end)
		if ap.Paging || ap.PagedMessages > 0 || ap.BlockedSends > 0 {
			ps.Addresses = append(ps.Addresses, ap)
		}
	}
	slices.SortFunc(ps.Addresses, func(x, y AddressPaging) int { return strings.Compare(x.Address, y.Address) })
	return ps
}

// pagingInfo is a's AddressPaging; end is the paging journal's last
// segment.
func (a *address) pagingInfo(end uint64) AddressPaging {
	a.mu.Lock()
	ap := AddressPaging{Address: a.name, Paging: a.paging, MemoryBytes: a.mem.Load(), MaxSizeBytes: a.policy.MaxSizeBytes,
		Policy: a.policy.AddressFullPolicy, BlockedSends: len(a.parked)}
	qs := slices.Clone(a.queues)
	a.mu.Unlock()
	first := uint64(0)
	for _, q := range qs {
		pg := q.pg()
		if pg == nil || pg.pending.Load() == 0 {
			continue
		}
		ap.PagedMessages += pg.pending.Load()
		ap.PagedBytes += pg.pendingBytes.Load()
		pg.mu.Lock()
		if first == 0 || pg.readPos.Seq < first {
			first = pg.readPos.Seq
		}
		pg.mu.Unlock()
	}
	if first != 0 && end >= first {
		ap.PageFiles = int(end - first + 1)
	}
	return ap
}
