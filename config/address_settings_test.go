package config

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMatchAddress: Artemis's wildcard syntax, with the examples of its
// manual (wildcard-syntax.md) and the edge cases.
func TestMatchAddress(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		yes, no []string
	}{
		{"#", []string{"", "a", "a.b.c", "news.europe"}, nil},
		{"news.europe.#", []string{"news.europe", "news.europe.sport", "news.europe.politics.regional"},
			[]string{"news.usa", "news.usa.sport", "entertainment", "news.europex", "news"}},
		{"news.*", []string{"news.europe", "news.usa"}, []string{"news", "news.europe.sport", "news.", "newsx.a"}},
		{"news.*.sport", []string{"news.europe.sport", "news.usa.sport"}, []string{"news.europe.politics", "news.sport", "news.a.b.sport"}},
		{"*", []string{"a", "orders"}, []string{"", "a.b"}},
		{"*.#", []string{"a", "a.b", "a.b.c"}, []string{""}},
		{"orders", []string{"orders"}, []string{"orders.x", "order", "x.orders"}},
		// Artemis reads "a.b#" as "a.b.#" (its old default broker.xml had
		// "activemq.management#").
		{"activemq.management#", []string{"activemq.management", "activemq.management.x"}, []string{"activemq.managementx"}},
		{"a.#", []string{"a", "a.b"}, []string{"ab", "b.a"}},
	} {
		if err := CheckMatch(tc.pattern); err != nil {
			t.Errorf("CheckMatch(%q): %v", tc.pattern, err)
		}
		for _, a := range tc.yes {
			if !MatchAddress(tc.pattern, a) {
				t.Errorf("%q does not match %q", tc.pattern, a)
			}
		}
		for _, a := range tc.no {
			if MatchAddress(tc.pattern, a) {
				t.Errorf("%q matches %q", tc.pattern, a)
			}
		}
	}
	for _, bad := range []string{"a.#.b", "#.a", "news*", "a.*b.c", "##"} {
		if err := CheckMatch(bad); err == nil {
			t.Errorf("CheckMatch(%q) accepted", bad)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestAddressSettingsFor: the most specific match wins field by field;
// fields it does not set come from less specific matches, then Artemis's
// defaults.
func TestAddressSettingsFor(t *testing.T) {
	s := AddressSettings{
		{Match: "#", AutoDeleteQueues: ptr(false), AutoDeleteQueuesDelay: ptr(5 * time.Second)},
		{Match: "tmp.#", AutoDeleteQueues: ptr(true)},
		{Match: "tmp.*.x", AutoDeleteQueuesDelay: ptr(time.Second)},
		{Match: "tmp.a.x", AutoCreateQueues: ptr(false)},
		{Match: "tmp.*.*", AutoDeleteQueuesMessageCount: ptr(int64(-1)), AutoDeleteQueuesDelay: ptr(2 * time.Second)},
	}
	def := DefaultAddressPolicy()
	if !def.AutoCreateQueues || !def.AutoCreateAddresses || !def.AutoDeleteQueues || !def.AutoDeleteAddresses ||
		def.AutoDeleteQueuesDelay != 0 || def.AutoDeleteQueuesMessageCount != 0 || def.AutoDeleteAddressesDelay != 0 {
		t.Fatalf("defaults differ from Artemis's: %+v", def)
	}
	if p := (AddressSettings)(nil).For("x"); p != def {
		t.Fatalf("no settings: %+v", p)
	}
	for _, tc := range []struct {
		addr string
		want AddressPolicy
	}{
		{"orders", AddressPolicy{AutoCreateQueues: true, AutoCreateAddresses: true, AutoDeleteAddresses: true, AutoDeleteQueuesDelay: 5 * time.Second}},
		{"tmp", AddressPolicy{AutoCreateQueues: true, AutoCreateAddresses: true, AutoDeleteQueues: true, AutoDeleteAddresses: true, AutoDeleteQueuesDelay: 5 * time.Second}},
		// tmp.*.x (more specific: its '*' comes later) beats tmp.*.* for the delay.
		{"tmp.b.x", AddressPolicy{AutoCreateQueues: true, AutoCreateAddresses: true, AutoDeleteQueues: true, AutoDeleteAddresses: true, AutoDeleteQueuesDelay: time.Second, AutoDeleteQueuesMessageCount: -1}},
		{"tmp.a.x", AddressPolicy{AutoCreateAddresses: true, AutoDeleteQueues: true, AutoDeleteAddresses: true, AutoDeleteQueuesDelay: time.Second, AutoDeleteQueuesMessageCount: -1}},
		{"tmp.b.y", AddressPolicy{AutoCreateQueues: true, AutoCreateAddresses: true, AutoDeleteQueues: true, AutoDeleteAddresses: true, AutoDeleteQueuesDelay: 2 * time.Second, AutoDeleteQueuesMessageCount: -1}},
	} {
		tc.want.MaxDeliveryAttempts, tc.want.ExpiryDelay, tc.want.RedistributionDelay, tc.want.RedeliveryDelayMultiplier = 10, -1, -1, 1
		tc.want.MaxSizeBytes, tc.want.AddressFullPolicy, tc.want.PageSizeBytes = -1, FullPage, DefaultPageSizeBytes
		if got := s.For(tc.addr); got != tc.want {
			t.Errorf("For(%q) = %+v\nwant %+v", tc.addr, got, tc.want)
		}
	}
}

// TestCompareMatch: Artemis's precedence between matches.
func TestCompareMatch(t *testing.T) {
	ordered := []string{"a.b", "a.b.c", "a.b.*", "a.*.c", "*.b.c", "a.b.c.#", "a.b.#", "#"}
	shuffled := slices.Clone(ordered)
	slices.Reverse(shuffled)
	slices.SortStableFunc(shuffled, compareMatch)
	if !slices.Equal(shuffled, ordered) {
		t.Fatalf("sorted %v, want %v", shuffled, ordered)
	}
}

func TestParseAddressSettings(t *testing.T) {
	c, warns, err := parseString(t, core(
		`<address-settings>`,
		`<address-setting match="#">`,
		`<dead-letter-address>DLQ</dead-letter-address>`,
		`<last-value-queue>true</last-value-queue>`,
		`<auto-create-queues>true</auto-create-queues>`,
		`<auto-delete-queues>false</auto-delete-queues>`,
		`</address-setting>`,
		`<address-setting match="tmp.#">`,
		`<auto-create-addresses>false</auto-create-addresses>`,
		`<auto-delete-queues>true</auto-delete-queues>`,
		`<auto-delete-queues-delay>1500</auto-delete-queues-delay>`,
		`<auto-delete-queues-message-count>-1</auto-delete-queues-message-count>`,
		`<auto-delete-addresses>true</auto-delete-addresses>`,
		`<auto-delete-addresses-delay>250</auto-delete-addresses-delay>`,
		`</address-setting>`,
		`</address-settings>`,
		`<address-queue-scan-period>1000</address-queue-scan-period>`,
		`<max-queues>500</max-queues>`,
	))
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 1 || !strings.Contains(warns[0].String(), "broker.xml:6: warning: <last-value-queue> in <address-setting> not supported yet") {
		t.Fatalf("warnings %v", warns)
	}
	want := AddressSettings{
		{Match: "#", Line: 4, AutoCreateQueues: ptr(true), AutoDeleteQueues: ptr(false), DeadLetterAddress: ptr("DLQ")},
		{Match: "tmp.#", Line: 10, AutoCreateAddresses: ptr(false), AutoDeleteQueues: ptr(true),
			AutoDeleteQueuesDelay: ptr(1500 * time.Millisecond), AutoDeleteQueuesMessageCount: ptr(int64(-1)),
			AutoDeleteAddresses: ptr(true), AutoDeleteAddressesDelay: ptr(250 * time.Millisecond)},
	}
	if got, _ := json.Marshal(c.AddressSettings); string(got) != string(must(json.Marshal(want))) {
		t.Fatalf("address settings\n%s\nwant\n%s", got, must(json.Marshal(want)))
	}
	if c.AddressQueueScanPeriod != time.Second || c.MaxQueues != 500 || c.MaxAddresses != 500 {
		t.Fatalf("scan period %v, max-queues %d, max-addresses %d (want 1s, 500, 500: max-addresses follows max-queues)",
			c.AddressQueueScanPeriod, c.MaxQueues, c.MaxAddresses)
	}
	if p := c.AddressSettings.For("tmp.x"); p.AutoCreateAddresses || !p.AutoCreateQueues || !p.AutoDeleteQueues {
		t.Fatalf("policy of tmp.x: %+v", p)
	}
	js, err := c.JSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"match": "tmp.#"`, `"auto-delete-queues-delay": 1500`, `"auto-delete-queues-message-count": -1`,
		`"max-queues": 500`, `"max-addresses": 500`, `"address-queue-scan-period": 1000`} {
		if !strings.Contains(string(js), s) {
			t.Errorf("config JSON lacks %s", s)
		}
	}

	d := Default()
	if d.MaxQueues != DefaultMaxQueues || d.MaxAddresses != DefaultMaxQueues || d.AddressQueueScanPeriod != 30*time.Second || d.AddressSettings != nil {
		t.Fatalf("defaults: max-queues %d, max-addresses %d, scan %v, settings %v", d.MaxQueues, d.MaxAddresses, d.AddressQueueScanPeriod, d.AddressSettings)
	}
	c, _, err = parseString(t, core(`<max-queues>-1</max-queues>`, `<max-addresses>20</max-addresses>`))
	if err != nil || c.MaxQueues != -1 || c.MaxAddresses != 20 {
		t.Fatalf("max-queues -1, max-addresses 20: %v %+v", err, c)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestAddressSettingsErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		line int
		msg  string
	}{
		{"no match", core(`<address-settings>`, `<address-setting/>`, `</address-settings>`), 4, "no match attribute"},
		{"# inside", core(`<address-settings>`, `<address-setting match="a.#.b"/>`, `</address-settings>`), 4, "'#' may only be the last word"},
		{"* in a word", core(`<address-settings>`, `<address-setting match="news*"/>`, `</address-settings>`), 4, "'*' must be a whole word"},
		{"typo", core(`<address-settings><address-setting match="#">`, `<auto-delete-queue>true</auto-delete-queue>`, `</address-setting></address-settings>`), 4, "did you mean <auto-delete-queues>"},
		{"bad child", core(`<address-settings>`, `<address-settting match="#"/>`, `</address-settings>`), 4, "did you mean <address-setting>"},
		{"bad boolean", core(`<address-settings><address-setting match="#">`, `<auto-create-queues>maybe</auto-create-queues>`, `</address-setting></address-settings>`), 4, "not a boolean"},
		{"negative delay", core(`<address-settings><address-setting match="#">`, `<auto-delete-queues-delay>-5</auto-delete-queues-delay>`, `</address-setting></address-settings>`), 4, "auto-delete-queues-delay -5 out of range [0, 2592000000] ms"},
		{"message count", core(`<address-settings><address-setting match="#">`, `<auto-delete-queues-message-count>-2</auto-delete-queues-message-count>`, `</address-setting></address-settings>`), 4, "auto-delete-queues-message-count -2 out of range [-1, 1000000000]"},
		{"twice", core(`<address-settings><address-setting match="#">`, `<auto-create-queues>true</auto-create-queues>`, `<auto-create-queues>false</auto-create-queues>`, `</address-setting></address-settings>`), 5, "appears twice"},
		{"max-queues 0", core(`<max-queues>0</max-queues>`), 3, "0 would refuse everything"},
		{"max-addresses -2", core(`<max-addresses>-2</max-addresses>`), 3, "max-addresses -2 out of range [-1, 1000000]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseString(t, tc.doc)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *config.Error", err)
			}
			if ce.Line != tc.line || !strings.Contains(ce.Msg, tc.msg) {
				t.Errorf("got %q, want broker.xml:%d: ...%s...", err, tc.line, tc.msg)
			}
		})
	}
}

// TestAddressSettingSameMatch: a second element with the same match
// replaces the first, as in Artemis, with a warning.
func TestAddressSettingSameMatch(t *testing.T) {
	c, warns, err := parseString(t, core(`<address-settings>`,
		`<address-setting match="a"><auto-create-queues>false</auto-create-queues></address-setting>`,
		`<address-setting match="a"><auto-delete-queues>false</auto-delete-queues></address-setting>`,
		`</address-settings>`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.AddressSettings) != 1 || c.AddressSettings[0].AutoCreateQueues != nil || c.AddressSettings[0].Line != 5 {
		t.Fatalf("settings %+v", c.AddressSettings)
	}
	if len(warns) != 1 || !strings.Contains(warns[0].Msg, "replaces the one at line 4") {
		t.Fatalf("warnings %v", warns)
	}
}
