package config

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestMessageSettings: dead letters, expiry, redelivery, routing types and
// the paging settings are read, merged by match and defaulted as Artemis
// does (max-redelivery-delay is ten times the delay unless set).
func TestMessageSettings(t *testing.T) {
	c, warns, err := parseString(t, core(
		`<address-settings>`,
		`<address-setting match="#">`,
		`<dead-letter-address>DLQ</dead-letter-address>`,
		`<expiry-address>ExpiryQueue</expiry-address>`,
		`<redelivery-delay>100</redelivery-delay>`,
		`<max-size-bytes>10M</max-size-bytes>`,
		`<page-size-bytes>1M</page-size-bytes>`,
		`</address-setting>`,
		`<address-setting match="orders.#">`,
		`<max-delivery-attempts>3</max-delivery-attempts>`,
		`<expiry-delay>60000</expiry-delay>`,
		`<redelivery-delay-multiplier>2.5</redelivery-delay-multiplier>`,
		`<max-redelivery-delay>500</max-redelivery-delay>`,
		`<default-queue-routing-type>anycast</default-queue-routing-type>`,
		`<default-address-routing-type>MULTICAST</default-address-routing-type>`,
		`<address-full-policy>block</address-full-policy>`,
		`<page-size-bytes>2M</page-size-bytes>`,
		`</address-setting>`,
		`</address-settings>`,
		`<global-max-size>64M</global-max-size>`,
		`<message-expiry-scan-period>500</message-expiry-scan-period>`,
	))
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Fatalf("warnings %v", warns)
	}
	if c.GlobalMaxSize != 64<<20 || c.MessageExpiryScanPeriod != 500*time.Millisecond {
		t.Fatalf("global-max-size %d, scan %v", c.GlobalMaxSize, c.MessageExpiryScanPeriod)
	}
	p := c.AddressSettings.For("news")
	if p.DeadLetterAddress != "DLQ" || p.ExpiryAddress != "ExpiryQueue" || p.MaxDeliveryAttempts != 10 || p.ExpiryDelay != -1 ||
		p.RedeliveryDelay != 100*time.Millisecond || p.MaxRedeliveryDelay != time.Second || p.RedeliveryDelayMultiplier != 1 ||
		p.MaxSizeBytes != 10<<20 || p.AddressFullPolicy != FullPage || p.DefaultQueueRoutingType != "" {
		t.Fatalf("news: %+v", p)
	}
	o := c.AddressSettings.For("orders.eu")
	if o.DeadLetterAddress != "DLQ" || o.MaxDeliveryAttempts != 3 || o.ExpiryDelay != time.Minute ||
		o.RedeliveryDelayMultiplier != 2.5 || o.MaxRedeliveryDelay != 500*time.Millisecond ||
		o.DefaultQueueRoutingType != RoutingAnycast || o.DefaultAddressRoutingType != RoutingMulticast ||
		o.AddressFullPolicy != FullBlock || o.MaxSizeBytes != 10<<20 {
		t.Fatalf("orders.eu: %+v", o)
	}
	// 100 ms, then x2.5 per delivery, capped at 500 ms.
	for n, want := range map[uint32]time.Duration{0: 0, 1: 100 * time.Millisecond, 2: 250 * time.Millisecond, 3: 500 * time.Millisecond, 40: 500 * time.Millisecond} {
		if got := o.RedeliveryDelayFor(n); got != want {
			t.Errorf("RedeliveryDelayFor(%d) = %v, want %v", n, got, want)
		}
	}
	if got := c.AddressSettings.PageSegmentSize(); got != 2<<20 {
		t.Errorf("PageSegmentSize = %d, want the largest page-size-bytes", got)
	}
	if got := (AddressSettings)(nil).PageSegmentSize(); got != DefaultPageSizeBytes {
		t.Errorf("PageSegmentSize without settings = %d", got)
	}
	js, err := c.JSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"dead-letter-address": "DLQ"`, `"redelivery-delay-multiplier": 2.5`, `"address-full-policy": "BLOCK"`,
		`"global-max-size": 67108864`, `"message-expiry-scan-period": 500`, `"max-redelivery-delay": 500`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("config check output lacks %s", want)
		}
	}
}

// TestAddresses: <addresses> predefines addresses and queues, with
// filters checked by the selector parser.
func TestAddresses(t *testing.T) {
	c, warns, err := parseString(t, core(
		`<addresses>`,
		`<address name="DLQ"><anycast><queue name="DLQ"/></anycast></address>`,
		`<address name="orders">`,
		`<multicast>`,
		`<queue name="orders.eu" max-consumers="-1"><filter string="region = 'eu'"/><durable>false</durable></queue>`,
		`<queue name="orders.all"/>`,
		`</multicast>`,
		`<anycast/>`,
		`</address>`,
		`</addresses>`,
	))
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 1 || !strings.Contains(warns[0].String(), "broker.xml:7: warning: <queue max-consumers=...> not supported yet") {
		t.Fatalf("warnings %v", warns)
	}
	want := []AddressDef{
		{Name: "DLQ", Anycast: true, Line: 4, Queues: []QueueDef{{Name: "DLQ", Routing: RoutingAnycast, Durable: true, Line: 4}}},
		{Name: "orders", Anycast: true, Multicast: true, Line: 5, Queues: []QueueDef{
			{Name: "orders.eu", Routing: RoutingMulticast, Filter: "region = 'eu'", Line: 7},
			{Name: "orders.all", Routing: RoutingMulticast, Durable: true, Line: 8}}},
	}
	if got, _ := json.Marshal(c.Addresses); string(got) != string(must(json.Marshal(want))) {
		t.Fatalf("addresses\n%s\nwant\n%s", got, must(json.Marshal(want)))
	}
}

func TestAddressesErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		line int
		msg  string
	}{
		{"bad filter", core(`<addresses><address name="a"><anycast><queue name="q">`, `<filter string="color = "/>`, `</queue></anycast></address></addresses>`), 4, "selector: at offset 8: expected a value"},
		{"no filter string", core(`<addresses><address name="a"><anycast><queue name="q">`, `<filter/>`, `</queue></anycast></address></addresses>`), 4, "no string attribute"},
		{"queue twice", core(`<addresses><address name="a"><anycast><queue name="q"/></anycast></address>`, `<address name="b"><anycast><queue name="q"/></anycast></address></addresses>`), 4, `<queue name="q"> is defined twice`},
		{"address twice", core(`<addresses><address name="a"><anycast/></address>`, `<address name="a"><anycast/></address></addresses>`), 4, `<address name="a"> is defined twice`},
		{"no routing", core(`<addresses>`, `<address name="a"/>`, `</addresses>`), 4, "neither <anycast> nor <multicast>"},
		{"no name", core(`<addresses>`, `<address><anycast/></address>`, `</addresses>`), 4, "no name attribute"},
		{"bad policy", core(`<address-settings><address-setting match="#">`, `<address-full-policy>SPILL</address-full-policy>`, `</address-setting></address-settings>`), 4, "not a policy"},
		{"bad routing", core(`<address-settings><address-setting match="#">`, `<default-queue-routing-type>BOTH</default-queue-routing-type>`, `</address-setting></address-settings>`), 4, "not a routing type"},
		{"global 0", core(`<global-max-size>0</global-max-size>`), 3, "0 would page every message"},
		{"multiplier", core(`<address-settings><address-setting match="#">`, `<redelivery-delay-multiplier>0.5</redelivery-delay-multiplier>`, `</address-setting></address-settings>`), 4, "redelivery-delay-multiplier 0.5 out of range [1, 1000]"},
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
