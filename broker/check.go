package broker

import (
	"fmt"

	"github.com/tandemmq/tandem/config"
)

// Check says whether `tandem run` can run cfg: what a configuration that
// parses may still ask for that this build does not do (issue 16: config
// check and run give the same verdict, through this function). The error
// names the file and line of the <ha-policy> when there is one.
func Check(cfg *config.Config) error {
	h := cfg.HA
	at := func(format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		switch {
		case cfg.File != "" && h.Line > 0:
			return fmt.Errorf("%s:%d: %s", cfg.File, h.Line, msg)
		case cfg.File != "":
			return fmt.Errorf("%s: %s", cfg.File, msg)
		}
		return fmt.Errorf("%s", msg)
	}
	switch h.Policy {
	case "", config.PolicyNone:
		return nil
	case config.PolicySharedStore:
		if !cfg.PersistenceEnabled {
			return at("shared-store HA needs persistence-enabled=true (the pair shares the journal)")
		}
	case config.PolicyReplication:
		switch {
		case !cfg.PersistenceEnabled:
			return at("replication needs persistence-enabled=true (it copies the journal)")
		case cfg.Store != nil:
			return at("replication copies a file journal; with a <database-store> the pair shares the database instead: use <shared-store>")
		case h.Manager == nil && quorumDiscovery(cfg) != "":
			return checkQuorumDiscovery(cfg, at)
		case h.Manager == nil && len(staticPeers(cfg, haAnnounceURL(cfg))) < 2:
			return at("replication with the embedded quorum vote (no <manager>) needs a cluster connection whose static connectors name the cluster's other brokers, at least two (three brokers or more; see docs/ha-replication-quorum.md)")
		}
	case config.PolicyColocated:
		col := h.Colocated
		switch {
		case !cfg.PersistenceEnabled:
			return at("colocated backups need persistence-enabled=true")
		case col != nil && col.Store == config.PolicyReplication && len(staticPeers(cfg, haAnnounceURL(cfg))) < 2:
			return at("colocated backups with replication use the quorum vote of the cluster's lives: the cluster connection's static connectors must name the other lives, at least two (three brokers or more; see docs/ha-colocated.md)")
		}
	case config.PolicyLiveOnly:
		// Runs (scaledown.go): a single broker that scales down on a
		// clean stop when <scale-down> is enabled.
		if sd := h.ScaleDown; sd != nil && sd.DiscoveryGroup != "" {
			found := false
			for _, g := range cfg.DiscoveryGroups {
				found = found || g.Name == sd.DiscoveryGroup
			}
			if !found {
				return at("<scale-down> names discovery group %q, which <discovery-groups> does not define", sd.DiscoveryGroup)
			}
		}
	default:
		if h.Role == config.RoleBackup {
			return at("HA policy %s with a backup role is not supported yet (it would serve as a second live broker)", h.Policy)
		}
	}
	return nil
}
