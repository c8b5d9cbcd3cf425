package config

import (
	"strings"
	"testing"
	"time"
)

// The limits of docs/limits.md: <connections-allowed>, <connection-ttl-max>,
// <pprof-enabled> and the acceptor parameters connectionsAllowed,
// writeBufferHighWaterMark, writeBufferLowWaterMark and writeTimeout.
func TestLimitSettings(t *testing.T) {
	c := Default()
	eq(t, "default connections-allowed", c.ConnectionsAllowed, DefaultConnectionsAllowed)
	eq(t, "default connection-ttl-max", c.ConnectionTTLMax, DefaultConnectionTTLMax)
	eq(t, "default pprof-enabled", c.PprofEnabled == nil, true)

	c, warns, err := parseString(t, core(
		`<connections-allowed>-1</connections-allowed>`,
		`<connection-ttl-max>120000</connection-ttl-max>`,
		`<pprof-enabled>false</pprof-enabled>`,
		`<acceptors><acceptor name="a">tcp://0.0.0.0:61616?connectionsAllowed=100;writeBufferHighWaterMark=262144;writeBufferLowWaterMark=65536;writeTimeout=5000;tcpNoDelay=true</acceptor></acceptors>`,
	))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "connections-allowed", c.ConnectionsAllowed, -1)
	eq(t, "connection-ttl-max", c.ConnectionTTLMax, 2*time.Minute)
	eq(t, "pprof-enabled", c.PprofEnabled != nil && !*c.PprofEnabled, true)
	l := c.Acceptors[0].Limits
	eq(t, "connectionsAllowed", l.ConnectionsAllowed, 100)
	eq(t, "writeBufferHighWaterMark", l.HighWaterMark, 262144)
	eq(t, "writeBufferLowWaterMark", l.LowWaterMark, 65536)
	eq(t, "writeTimeout", l.WriteTimeout, 5*time.Second)
	if len(warns) != 1 || !strings.Contains(warns[0].String(), "tcpNoDelay") || strings.Contains(warns[0].String(), "connectionsAllowed") {
		t.Errorf("want one warning naming only tcpNoDelay, got %v", warns)
	}
	j, err := c.JSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"connections-allowed": -1`, `"connection-ttl-max": 120000`, `"pprof-enabled": "false"`} {
		if !strings.Contains(string(j), s) {
			t.Errorf("config JSON lacks %s", s)
		}
	}
}

func TestLimitSettingErrors(t *testing.T) {
	for _, tc := range []struct{ xml, want string }{
		{`<connections-allowed>0</connections-allowed>`, "0 would refuse every client"},
		{`<connections-allowed>-2</connections-allowed>`, "connections-allowed"},
		{`<connection-ttl-max>0</connection-ttl-max>`, "0 would close every connection"},
		{`<pprof-enabled>maybe</pprof-enabled>`, "not a boolean"},
		{`<acceptors><acceptor name="a">tcp://h:1?connectionsAllowed=many</acceptor></acceptors>`, `connectionsAllowed="many"`},
		{`<acceptors><acceptor name="a">tcp://h:1?writeTimeout=0</acceptor></acceptors>`, "writeTimeout=0"},
		{`<acceptors><acceptor name="a">tcp://h:1?writeBufferHighWaterMark=100;writeBufferLowWaterMark=200</acceptor></acceptors>`, "above writeBufferHighWaterMark"},
	} {
		_, _, err := parseString(t, core(tc.xml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.xml, err, tc.want)
		}
	}
}
