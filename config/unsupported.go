package config

import "sort"

// unsupportedCore lists the <core> elements Artemis's schema allows that
// Tandem does not implement yet: each is a warning and is ignored.
var unsupportedCore = setOf(
	// addressing, routing and security settings
	"queues", "diverts", "bridges",
	"federations", "broker-connections", "wildcard-addresses", "resource-limit-settings",
	"grouping-handler", "connector-services", "remoting-incoming-interceptors",
	"remoting-outgoing-interceptors", "broker-plugins", "metrics", "metrics-plugin",
	"wild-card-routing-enabled", "management-address", "management-notification-address",
	"management-message-attribute-size-limit", "authentication-cache-size",
	"authorization-cache-size", "populate-validated-user",
	"reject-empty-validated-user", "password-codec", "mask-password", "jmx-management-enabled",
	"jmx-domain", "jmx-use-broker-name", "message-counter-enabled",
	"message-counter-sample-period", "message-counter-max-day-history",
	"amqp-use-core-subscription-naming", "mqtt-session-scan-interval",
	"mqtt-session-state-persistence-timeout", "mqtt-subscription-persistence",
	"literal-match-markers", "suppress-session-notifications", "resolve-protocols",
	"log-delegate-factory-class-name", "system-property-prefix", "internal-naming-prefix",
	"temporary-queue-namespace", "uuid-namespace", "max-redelivery-records",
	// paging, large messages and memory
	"page-max-concurrent-io", "read-whole-page", "page-sync-timeout",
	"global-max-messages", "global-max-size-percent-of-jvm-max-memory", "max-disk-usage",
	"min-disk-free", "disk-scan-period", "memory-warning-threshold", "memory-measure-interval",
	"max-size-bytes-reject-threshold",
	// threads, timers and the critical analyzer
	"scheduled-thread-pool-max-size", "thread-pool-max-size", "graceful-shutdown-enabled",
	"graceful-shutdown-timeout", "async-connection-execution-enabled", "transaction-timeout",
	"transaction-timeout-scan-period",
	"message-expiry-thread-priority", "connection-ttl-check-interval",
	"configuration-file-refresh-period", "critical-analyzer", "critical-analyzer-timeout",
	"critical-analyzer-check-period", "critical-analyzer-policy",
	"persist-delivery-count-before-delivery",
	// network health check
	"network-check-list", "network-check-URL-list", "network-check-period",
	"network-check-timeout", "network-check-NIC", "network-check-ping-command",
	"network-check-ping6-command",
	// journal settings Tandem decides itself
	"journal-lock-acquisition-timeout", "journal-file-open-timeout", "journal-device-block-size",
	"journal-max-attic-files", "journal-retention-directory", "log-journal-write-rate",
	"journal-perf-blast-pages", "run-sync-speed-test",
	// newer Artemis releases
	"lock-coordinators", "connection-routers", "broker-balancers", "remoting-interceptors",
	"view-permission-method-match-pattern", "management-rbac-prefix", "management-rbac",
	"mirror-ack-manager-queue-attempts", "mirror-ack-manager-page-attempts",
	"mirror-ack-manager-retry-delay", "mirror-page-transaction", "mirror-ack-manager-warn-unacked",
)

func setOf(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

func unsupportedCoreNames() []string {
	out := make([]string, 0, len(unsupportedCore))
	for n := range unsupportedCore {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
