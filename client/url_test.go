package client

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tandemmq/tandem/wire"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		in  string
		cmp func(u *URL) string // returns the name of a wrong field, or ""
	}{
		{in: "tcp://localhost:61616", cmp: func(u *URL) string {
			return check(u.Addrs, []string{"localhost:61616"}, u.HA, false, u.ReconnectAttempts, 0, u.RetryInterval, 2*time.Second)
		}},
		{in: "tcp://:61616", cmp: func(u *URL) string {
			return check(u.Addrs, []string{"localhost:61616"}, u.HA, false, u.ReconnectAttempts, 0, u.RetryInterval, 2*time.Second)
		}},
		{in: "(tcp://a:61616,tcp://b:61617)?ha=true&reconnectAttempts=-1&retryInterval=500&retryIntervalMultiplier=1.5&maxRetryInterval=2000", cmp: func(u *URL) string {
			if u.RetryIntervalMultiplier != 1.5 || u.MaxRetryInterval != 2*time.Second {
				return "multiplier or max interval"
			}
			return check(u.Addrs, []string{"a:61616", "b:61617"}, u.HA, true, u.ReconnectAttempts, -1, u.RetryInterval, 500*time.Millisecond)
		}},
		{in: "(tcp://a:1,tcp://b:2)?ha=true", cmp: func(u *URL) string { // Tandem defaults under HA
			if u.RetryIntervalMultiplier != DefaultHARetryIntervalMultiplier {
				return "multiplier"
			}
			return check(u.Addrs, []string{"a:1", "b:2"}, u.HA, true, u.ReconnectAttempts, -1, u.RetryInterval, DefaultHARetryInterval)
		}},
		{in: "(tcp://a:1,tcp://b:2)?ha=true&reconnectAttempts=3", cmp: func(u *URL) string {
			return check(u.Addrs, []string{"a:1", "b:2"}, u.HA, true, u.ReconnectAttempts, 3, u.RetryInterval, DefaultHARetryInterval)
		}},
		{in: "tcp://h:5?reconnectAttempts=5&callTimeout=100&clientFailureCheckPeriod=200&connectionTTL=300&user=u&password=p&foo=bar", cmp: func(u *URL) string {
			if u.CallTimeout != 100*time.Millisecond || u.ClientFailureCheckPeriod != 200*time.Millisecond || u.ConnectionTTL != 300*time.Millisecond {
				return "timeouts"
			}
			if u.User != "u" || u.Password != "p" || u.Params["foo"] != "bar" || len(u.Params) != 7 {
				return "user, password or params"
			}
			return check(u.Addrs, []string{"h:5"}, u.HA, false, u.ReconnectAttempts, 5, u.RetryInterval, 2*time.Second)
		}},
		{in: "(tcp://[::1]:61616?ha=true)", cmp: func(u *URL) string {
			return check(u.Addrs, []string{"[::1]:61616"}, u.HA, true, u.ReconnectAttempts, -1, u.RetryInterval, DefaultHARetryInterval)
		}},
		{in: "(tcp://a:1,tcp://b:2)?ha=true&retryInterval=2000", cmp: func(u *URL) string { // an explicit value wins
			if u.RetryIntervalMultiplier != DefaultRetryIntervalMultiplier {
				return "multiplier"
			}
			return check(u.Addrs, []string{"a:1", "b:2"}, u.HA, true, u.ReconnectAttempts, -1, u.RetryInterval, 2*time.Second)
		}},
	}
	for _, tt := range tests {
		u, err := ParseURL(tt.in)
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if msg := tt.cmp(u); msg != "" {
			t.Errorf("%s: %s wrong: %+v", tt.in, msg, u)
		}
	}
}

func check(addrs, wantAddrs []string, ha, wantHA bool, ra, wantRA int, ri, wantRI time.Duration) string {
	switch {
	case !reflect.DeepEqual(addrs, wantAddrs):
		return "addrs"
	case ha != wantHA:
		return "ha"
	case ra != wantRA:
		return "reconnectAttempts"
	case ri != wantRI:
		return "retryInterval"
	}
	return ""
}

func TestParseURLErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "empty"},
		{"localhost:61616", "want tcp://host:port"},
		{"amqp://h:1", "not supported"},
		{"tcp://h", "missing port"},
		{"tcp://h:0", "bad port"},
		{"tcp://h:x", "bad port"},
		{"(tcp://a:1,tcp://b:2", "missing ')'"},
		{"(tcp://a:1)x", "unexpected"},
		{"tcp://a:1?ha=maybe", "option ha"},
		{"tcp://a:1?reconnectAttempts=-2", "reconnectAttempts"},
		{"tcp://a:1?retryInterval=-5", "retryInterval"},
		{"tcp://a:1?retryIntervalMultiplier=0.5", "retryIntervalMultiplier"},
		{"tcp://a:1?%zz", "options"},
	}
	for _, tt := range tests {
		_, err := ParseURL(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseURL(%q) = %v, want error containing %q", tt.in, err, tt.want)
		}
	}
}

func TestNextInterval(t *testing.T) {
	u, err := ParseURL("tcp://a:1?retryInterval=500&retryIntervalMultiplier=1.5&maxRetryInterval=2000")
	if err != nil {
		t.Fatal(err)
	}
	var got []time.Duration
	var d time.Duration
	for i := 0; i < 6; i++ {
		d = u.nextInterval(d)
		got = append(got, d)
	}
	ms := time.Millisecond
	want := []time.Duration{500 * ms, 750 * ms, 1125 * ms, 1687500 * time.Microsecond, 2000 * ms, 2000 * ms}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("intervals %v, want %v", got, want)
	}
}

func TestCandidates(t *testing.T) {
	member := func(url string) wire.Member { return wire.Member{URL: url} }
	tests := []struct {
		url     string
		members []wire.Member
		lost    string
		want    []string
	}{
		{"tcp://a:1", nil, "a:1", []string{"a:1"}},
		{"(tcp://a:1,tcp://b:2)", nil, "b:2", []string{"b:2", "a:1"}},
		{"(tcp://a:1,tcp://b:2)?ha=true", nil, "a:1", []string{"b:2", "a:1"}},
		{"(tcp://a:1,tcp://c:3)?ha=true", []wire.Member{member("tcp://a:1"), member("tcp://b:2")}, "a:1", []string{"b:2", "a:1", "c:3"}},
	}
	for _, tt := range tests {
		u, err := ParseURL(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		c := &Conn{url: u, topology: wire.Topology{Members: tt.members}}
		if got := c.candidates(tt.lost); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s lost %s: %v, want %v", tt.url, tt.lost, got, tt.want)
		}
	}
}

// FuzzParseURL: any input parses or fails with an error, never panics; a
// parsed URL has at least one host:port and sane retry settings.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"tcp://localhost:61616",
		"(tcp://a:61616,tcp://b:61617)?ha=true&reconnectAttempts=-1&retryInterval=500&retryIntervalMultiplier=1.5&maxRetryInterval=2000",
		"(tcp://[::1]:1?ha=true)", "tcp://h:1?%zz", "((", "tcp://:0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURL(s)
		if err != nil {
			return
		}
		if len(u.Addrs) == 0 || u.ReconnectAttempts < -1 || u.RetryIntervalMultiplier < 1 {
			t.Fatalf("%q parsed to %+v", s, u)
		}
		for _, a := range u.Addrs {
			if _, err := parseElem("tcp://" + a); err != nil {
				t.Fatalf("%q: address %q does not parse back: %v", s, a, err)
			}
		}
	})
}
