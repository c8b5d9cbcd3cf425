// Package wire is Tandem's client and cluster protocol: the frame format,
// the frame types, and an allocation-free encoder and a bounds-checked
// decoder. The server and the client both import it; it imports nothing of
// Tandem's.
//
// It owns the bytes on the connection and nothing else: it never dials,
// listens, starts goroutines, logs or keeps connection state. It must never
// panic on input: every malformed, oversized or corrupted frame is a
// *FrameError naming the stream offset and the reason.
//
// # Frame format
//
// All integers are big-endian. A frame is
//
//	offset size field
//	0      4    length   bytes that follow this field: 1+1+8+len(payload)+4
//	4      1    version  protocol version of the sender (Version, now 1)
//	5      1    type     frame type (Type)
//	6      8    corr     correlation ID (see below); 0 when none
//	14     n    payload  type-specific fields (below)
//	14+n   4    crc      CRC32C (Castagnoli) of bytes [0, 14+n): length,
//	                     version, type, corr and payload
//
// A frame is at most MaxFrameSize bytes including the length field. A
// receiver that sees a bad length, a bad CRC, an unknown type, or a payload
// that does not parse exactly (truncated fields, trailing bytes, counts
// larger than the payload could hold) gets a *FrameError and must close the
// connection: after a framing error the stream cannot be resynchronised.
// Message bodies are limited to MaxBodySize (1 MiB); the frame limit leaves
// room for properties. A larger body is refused by the client before
// sending (ErrBodyTooLarge) and by the server with CodeTooLarge.
// A Decoder's memory follows the bytes received, not the length a frame
// announces, and SetMaxFrameSize lowers the limit (the server allows
// 16 KiB until the handshake is done). Ping and Pong carry no payload:
// Next refuses one that does, since callers answer them without
// Unmarshal.
//
// Payload primitives: u8/u16/u32/u64 fixed width; "str" and "bytes" are a
// uvarint length followed by that many bytes; "list" is a uvarint count
// followed by the elements. A bool is a u8 0 or 1.
//
// # Correlation
//
// A request that wants an answer carries a non-zero corr chosen by the
// sender, unique among its outstanding requests on that connection; the
// answer carries the same corr. Answers may arrive in any order and the
// server may batch many of them into one write. Requests with corr 0 get no
// answer (fire-and-forget, e.g. a non-blocking non-durable Send, Credit).
// Server-initiated frames (Deliver, Topology, Disconnect, Ping) use corr 0
// except Ping, which carries a corr echoed by Pong.
//
// # Conversation
//
//	client                              server
//	Hello{versions, client ID, user}  ->
//	                                  <- Welcome{version, node ID, topology}
//	                                     or Error{code} and close
//	CreateSession{session ID}       c ->
//	                                  <- Result c
//	CreateConsumer{ids, queue}      c ->
//	                                  <- ConsumerCreated c
//	                                  <- Deliver ... (while credit > 0)
//	Credit{consumer, n}               ->
//	Send{session, message}          c ->  (many in flight: pipelined)
//	                                  <- SendResult c  (durable sends: once stored)
//	Ack{consumer, message IDs}      c ->  (many in flight: pipelined)
//	                                  <- AckConfirm c  (once the acks are durable)
//	Commit{session}                 c ->
//	                                  <- Result c
//	Ping c                           <->  Pong c (either side may ping)
//	                                  <- Topology (whenever membership changes)
//	                                  <- Disconnect{code} (server going away)
//
// The first frame from the client must be Hello and nothing else is
// accepted until Welcome. The client chooses session and consumer IDs
// (unique on its connection, never reused on it); this is what lets a client
// re-create the same sessions and consumers on another broker after
// failover. The server processes a connection's frames in order.
//
// Heartbeats: the client tells the server its connection TTL and client
// failure check period in Hello; Welcome returns the TTL the server applies
// (the server may override). The server closes a connection from which it
// received nothing for the TTL. The client pings at least every half of
// min(TTL, check period) and treats a connection from which it received
// nothing (frames or Pong) for the check period as dead.
//
// Flow control: a consumer starts with CreateConsumer.InitialCredit and the
// server sends one Deliver per unit of credit; Credit frames add to it.
// Credit is in messages.
//
// Durability (issue 7): a SendResult for a durable Send is sent only when the
// message's records are durable (or it was recognised as a duplicate of a
// stored message: Duplicate set, still CodeOK). An AckConfirm is sent only
// when the acks' records are durable; AckConfirm.Failed lists message IDs
// that were not acknowledged (not delivered to that consumer, or already
// acked). In a transacted session sends and acks join the session's
// transaction: their SendResult/AckConfirm only mean "accepted into the
// transaction"; the Result of Commit means durable. A transaction begins
// implicitly with the session and after every Commit or Rollback. A
// Result of a Commit with CodeTxRolledBack means nothing of it was stored.
//
// Unknown outcomes: when a connection is lost, requests without an answer
// have unknown outcomes. Durable sends carry a DuplicateID so a client can
// resend them safely (the server drops a second copy and answers OK with
// Duplicate set).
//
// Other conversations on the same frames: replication (replication.go),
// management (manage.go) and cluster connections between live brokers
// (cluster.go: scale-down, message forwarding with its ClusterBindings
// pushes, colocated backup requests). discovery.go is the UDP announcement datagram of
// broadcast and discovery groups (its own magic, version and CRC).
//
// Versioning: the layout of the first 14 bytes and of Hello's first two
// fields (min and max version) never changes. The client sends Hello with
// its highest version in the header; the server picks the highest version
// both support and answers with Welcome in that version, or with
// Error{CodeUnsupportedVersion}.
package wire
