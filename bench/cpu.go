package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// BrokerStatus is the part of GET /status that bench and `tandem cluster
// status` read (CLI.md's keys).
type BrokerStatus struct {
	NodeID     string   `json:"node_id"`
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Policy     string   `json:"policy"`
	Role       string   `json:"role"`
	State      string   `json:"state"`
	Epoch      uint64   `json:"epoch"`
	Store      string   `json:"store"`
	CPUSeconds *float64 `json:"cpu_seconds"`
	Acceptors  []string `json:"acceptors"`
	Peers      []Peer   `json:"peers"`
	// Cluster is the cluster connection's bridges (message load
	// balancing); nil when the broker has none.
	Cluster *ClusterBridges `json:"cluster"`
}

// ClusterBridges is /status's "cluster": the message-load-balancing and
// each peer's bridge.
type ClusterBridges struct {
	LoadBalancing string   `json:"message_load_balancing"`
	Peers         []Bridge `json:"peers"`
}

// Bridge is one peer's bridge in /status.
type Bridge struct {
	NodeID          string `json:"node_id"`
	Name            string `json:"name"`
	Connected       bool   `json:"connected"`
	Forwarded       uint64 `json:"forwarded"`
	Pending         int    `json:"pending"`
	RemoteQueues    int    `json:"remote_queues"`
	RemoteConsumers int    `json:"remote_consumers"`
}

// Peer is one member of the topology in /status.
type Peer struct {
	NodeID string `json:"node_id"`
	Role   string `json:"role"`
	State  string `json:"state"`
	URL    string `json:"url"`
	Epoch  uint64 `json:"epoch"`
}

// FetchStatus gets http://ADDR/status (ADDR is host:port or a URL).
func FetchStatus(ctx context.Context, addr string) (*BrokerStatus, error) {
	u := addr
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	u = strings.TrimSuffix(u, "/") + "/status"
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	var st BrokerStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	return &st, nil
}

// brokerCPU returns the broker's cpu_seconds from /status.
func brokerCPU(ctx context.Context, addr string) (float64, error) {
	st, err := FetchStatus(ctx, addr)
	if err != nil {
		return 0, err
	}
	if st.CPUSeconds == nil {
		return 0, fmt.Errorf("GET %s/status: no cpu_seconds", addr)
	}
	return *st.CPUSeconds, nil
}
