package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSecuritySettings: <security-settings> with Artemis's syntax; the most
// specific match applies, not merged with the others.
func TestSecuritySettings(t *testing.T) {
	c, warns, err := parseString(t, core(
		`<security-invalidation-interval>2500</security-invalidation-interval>`,
		`<security-settings>`,
		`<security-setting match="#"><permission type="send" roles="admin, amq"/><permission type="manage" roles="admin"/><permission type="view" roles="amq"/></security-setting>`,
		`<security-setting match="orders.*"><permission type="consume" roles="app"/></security-setting>`,
		`</security-settings>`,
		`<security><require-login>false</require-login><anonymous-role>guest</anonymous-role><users-file>/etc/tandem/users</users-file></security>`,
	))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Security
	if s.InvalidationInterval != 2500*time.Millisecond || !s.SettingsSet || len(s.Settings) != 2 {
		t.Fatalf("%+v", s)
	}
	if got := s.Settings.For("orders.eu"); got == nil || got.Match != "orders.*" || got.Roles["send"] != nil {
		t.Errorf("orders.eu -> %+v", got)
	}
	if got := s.Settings.For("payments"); got == nil || got.Match != "#" || strings.Join(got.Roles["send"], "|") != "admin|amq" {
		t.Errorf("payments -> %+v", got)
	}
	if s.RequireLogin == nil || *s.RequireLogin || strings.Join(s.AnonymousRoles, ",") != "guest" || s.UsersFile != "/etc/tandem/users" || !s.UsersFileSet {
		t.Errorf("security %+v", s)
	}
	if !c.AnonymousAllowed() {
		t.Error("require-login false, yet anonymous refused")
	}
	if len(warns) != 1 || !strings.Contains(warns[0].String(), `<permission type="view">`) {
		t.Errorf("warnings %v", warns)
	}
}

func TestSecuritySettingsErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`<security-settings><security-setting><permission type="send" roles="a"/></security-setting></security-settings>`, "needs a match attribute"},
		{`<security-settings><security-setting match="a.#.b"/></security-settings>`, "'#' may only be the last word"},
		{`<security-settings><security-setting match="#"><permission type="sned" roles="a"/></security-setting></security-settings>`, `unknown permission type (want one of send, consume`},
		{`<security-settings><security-setting match="#"><permission type="send"/></security-setting></security-settings>`, "needs a roles attribute"},
		{`<security-settings><security-setting match="#"/><security-setting match="#"/></security-settings>`, "appears twice"},
		{`<security-settings><bogus/></security-settings>`, "unknown element <bogus> in <security-settings>"},
		{`<security><require-login>maybe</require-login></security>`, "is not a boolean"},
		{`<acceptors><acceptor name="a">tcp://0.0.0.0:1?sslEnabled=true</acceptor></acceptors>`, "sslEnabled=true needs keyStorePath"},
		{`<acceptors><acceptor name="a">tcp://0.0.0.0:1?sslEnabled=true;keyStorePath=k.jks;keyStoreType=JKS</acceptor></acceptors>`, "convert it with keytool"},
		{`<acceptors><acceptor name="a">tcp://0.0.0.0:1?sslEnabled=true;keyStorePath=k.pem;needClientAuth=true</acceptor></acceptors>`, "need trustStorePath"},
		{`<acceptors><acceptor name="a">tcp://0.0.0.0:1?sslEnabled=yes</acceptor></acceptors>`, `sslEnabled="yes" is not a boolean`},
		{`<management-http-ssl keyStoreType="PEM"/>`, "needs keyStorePath"},
		{`<management-http-ssl keyStorePath="k.pem" bogus="1"/>`, `unknown attribute "bogus"`},
	} {
		_, _, err := parseString(t, core(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.doc, err, tc.want)
		}
	}
}

// TestTLSParams: TLS parameters are accepted on acceptors and connectors
// (no "not supported" warning), store paths resolve against the instance
// directory, passwords are masked in config check's JSON.
func TestTLSParams(t *testing.T) {
	dir := t.TempDir()
	etc := filepath.Join(dir, "etc")
	os.MkdirAll(etc, 0o755)
	file := filepath.Join(etc, "broker.xml")
	os.WriteFile(file, []byte(core(
		`<acceptors><acceptor name="a">tcp://0.0.0.0:61617?sslEnabled=true;keyStorePath=etc/broker.p12;keyStorePassword=topsecret;needClientAuth=true;trustStorePath=/ca.pem</acceptor></acceptors>`,
		`<connectors><connector name="c">tcp://b:61617?sslEnabled=true;trustStorePath=etc/ca.pem</connector></connectors>`,
		`<management-http-ssl keyStorePath="etc/web.pem"/>`,
	)), 0o644)
	c, warns, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings %v", warns)
	}
	if got := c.Acceptors[0].Params["keyStorePath"]; got != filepath.Join(dir, "etc/broker.p12") {
		t.Errorf("keyStorePath %q", got)
	}
	if got := c.Acceptors[0].Params["trustStorePath"]; got != "/ca.pem" {
		t.Errorf("trustStorePath %q", got)
	}
	if got := c.Connectors[0].Params["trustStorePath"]; got != filepath.Join(dir, "etc/ca.pem") {
		t.Errorf("connector trustStorePath %q", got)
	}
	if got := c.Security.ManagementSSL["keyStorePath"]; got != filepath.Join(dir, "etc/web.pem") {
		t.Errorf("management keyStorePath %q", got)
	}
	if got := c.Security.UsersFile; got != filepath.Join(etc, "users") {
		t.Errorf("users file %q", got)
	}
	js, err := c.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(js), "topsecret") {
		t.Errorf("config check shows the keystore password:\n%s", js)
	}
	// TLS parameters without sslEnabled: a warning.
	_, warns, err = parseString(t, core(`<acceptors><acceptor name="a">tcp://0.0.0.0:1?keyStorePath=k.pem</acceptor></acceptors>`))
	if err != nil || len(warns) != 1 || !strings.Contains(warns[0].Msg, "without sslEnabled=true") {
		t.Errorf("%v %v", warns, err)
	}
}
