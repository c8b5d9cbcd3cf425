package broker

import (
	"strings"
	"testing"
)

// The broker-wide connection limit is <connections-allowed>, lowered to
// what the open-file limit leaves (10 500 idle connections exhausted the
// file descriptors, and the management port failed with them).
func TestConnectionLimit(t *testing.T) {
	for _, tc := range []struct {
		configured, files, want int
		why                     string
	}{
		{4096, 1 << 20, 4096, "connections-allowed 4096"},
		{4096, 4096, 4096 - fileReserve, "open-file limit 4096"},
		{-1, 1 << 20, 1<<20 - fileReserve, "open-file limit"},
		{-1, 0, 0, "no connection limit"},
		{100, 0, 100, "connections-allowed 100"},
		{4096, 10, 1, "open-file limit 10"},
	} {
		got, why := connectionLimit(tc.configured, tc.files)
		if got != tc.want || !strings.Contains(why, tc.why) {
			t.Errorf("connectionLimit(%d, %d) = %d %q, want %d %q", tc.configured, tc.files, got, why, tc.want, tc.why)
		}
	}
}
