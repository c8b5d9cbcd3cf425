package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tandemmq/tandem/auth"
	"github.com/tandemmq/tandem/config"
)

// TestManagementAPIPermissions: over HTTP each operation needs its
// permission: a user with browse and the queue permissions on ops.# may
// browse, create and delete there but not purge (manage), nor touch
// another address; a missing permission is 403 naming the user, the
// permission and the address, and the broker keeps answering.
func TestManagementAPIPermissions(t *testing.T) {
	cfg, _, err := config.Parse("b.xml", strings.NewReader(`<configuration><core><security-settings>
	  <security-setting match="#"><permission type="manage" roles="admin"/><permission type="browse" roles="admin"/>
	    <permission type="createDurableQueue" roles="admin"/><permission type="createAddress" roles="admin"/></security-setting>
	  <security-setting match="ops.#"><permission type="browse" roles="ops"/><permission type="createDurableQueue" roles="ops"/>
	    <permission type="deleteDurableQueue" roles="ops"/><permission type="createAddress" roles="ops"/>
	    <permission type="manage" roles="admin"/></security-setting>
	</security-settings></core></configuration>`))
	if err != nil {
		t.Fatal(err)
	}
	g, err := auth.New(auth.Options{Users: []config.User{{Name: "admin", Password: "a", Roles: []string{"admin"}},
		{Name: "op", Password: "o", Roles: []string{"ops"}}}, Settings: cfg.Security.Settings, SettingsSet: true, Interval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	b := newBroker(t, Options{})
	listen(t, b, NetOptions{Security: g})
	a := api{t, ManagementHandler(ManagementOptions{Status: b.s.Status})}
	const js = "application/json"

	if code, body, _ := a.do("POST", "/api/queues", "op:o", `{"name":"ops.q"}`, js); code != http.StatusCreated {
		t.Fatalf("create ops.q: %d %v", code, body)
	}
	if code, body, _ := a.do("GET", "/api/queues/ops.q/messages", "op:o", "", ""); code != http.StatusOK {
		t.Fatalf("browse ops.q: %d %v", code, body)
	}
	for _, tc := range []struct{ method, path, body, want string }{
		{"POST", "/api/queues/ops.q/purge", "", `user "op" may not manage on address "ops.q"`},
		{"POST", "/api/queues", `{"name":"billing"}`, `user "op" may not createDurableQueue on address "billing"`},
		{"POST", "/api/addresses", `{"name":"billing.new"}`, `user "op" may not createAddress on address "billing.new"`},
	} {
		code, body, _ := a.do(tc.method, tc.path, "op:o", tc.body, js)
		if code != http.StatusForbidden || !strings.Contains(body["error"].(string), tc.want) {
			t.Errorf("%s %s: %d %v, want 403 %q", tc.method, tc.path, code, body, tc.want)
		}
	}
	if code, body, _ := a.do("POST", "/api/queues/ops.q/purge", "admin:a", "", js); code != http.StatusOK {
		t.Errorf("admin purge: %d %v", code, body)
	}
	if code, body, _ := a.do("DELETE", "/api/queues/ops.q", "op:o", "", js); code != http.StatusOK {
		t.Errorf("delete ops.q: %d %v", code, body)
	}
	if code, _, _ := a.do("GET", "/api/queues", "", "", ""); code != http.StatusOK {
		t.Errorf("list: %d", code)
	}
}
