package broker

import (
	"log/slog"
	"strings"

	"github.com/tandemmq/tandem/amqp"
	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/stomp"
)

// protocolHandlers are the protocols the broker serves besides its own
// (CORE) on every acceptor whose protocols= list does not leave them out
// (docs/protocols.md).
func protocolHandlers() []server.ProtocolHandler {
	return []server.ProtocolHandler{stomp.New(stomp.Options{}), amqp.New()}
}

// acceptorProtocols parses an acceptor's protocols= parameter against the
// registered handlers; protocols it does not know are logged and left out.
func acceptorProtocols(log *slog.Logger, ac config.Acceptor, hs []server.ProtocolHandler) ([]string, error) {
	names := make([]string, len(hs))
	for i, h := range hs {
		names[i] = h.Name()
	}
	ps, unknown, err := server.ParseProtocols(ac.Params["protocols"], names)
	if err != nil {
		return nil, err
	}
	if len(unknown) > 0 {
		log.Warn("acceptor lists protocols this broker does not serve; ignored", "acceptor", ac.Name, "protocols", strings.Join(unknown, ","))
	}
	return ps, nil
}
