// Package amqp is the broker's AMQP 1.0 server side (OASIS AMQP 1.0, parts
// 1 to 5), written from the specification: the type system and framing,
// SASL (PLAIN against the acceptor's users, ANONYMOUS when anonymous
// access is allowed), connections, sessions and links, and their mapping
// onto package server's in-process API (Session, Send, CreateConsumer,
// Ack, Commit). Handler plugs it into the broker's acceptors as the
// protocol "AMQP"; docs/amqp.md is the user's guide.
//
// It imports server and never the other way round. It owns the AMQP
// bytes of a connection and the state of its sessions and links; it
// keeps no state across connections (a link's unsettled state is not
// recovered: a client resends, and duplicate IDs make that safe).
//
// # What it must never do
//
//   - Panic on input or allocate on a peer's say-so: the decoder checks
//     every size and count against the bytes left before allocating,
//     nests at most 32 deep, and bounds the values one frame may decode
//     to its size (an array of zero-width elements is paid for); a frame
//     larger than the announced max-frame-size is refused from its
//     header, and a frame's buffer grows with the bytes that arrive, not
//     to the size its header announces. Malformed input ends the connection (or the session, or the
//     link, as the specification says) with an error condition.
//   - Settle a send before the server reports it durable, or settle an
//     accept before its ack is durable; tell a client "rejected" when the
//     outcome is unknown (a halted broker, a lost lease): the connection
//     is ended instead, so the client resends.
//   - Buffer without bound for a client that does not read: deliveries
//     are pulled from queues only while the connection's output is below
//     a limit, the reader stops reading above it, and a write that makes
//     no progress for writeTimeout closes the connection.
//
// # Files
//
//	types.go, decode.go, encode.go   the type system (part 1)
//	frames.go, performatives.go      framing and performatives (parts 2, 3, 4, 5)
//	writer.go                        a connection's bounded output
//	conn.go                          headers, SASL, open/close, the read loop
//	session.go                       begin/end, session flow control, dispositions
//	link.go                          attach/detach, link credit, transfers both ways
//	txn.go                           the transaction coordinator (local transactions)
//	message.go                       AMQP message <-> server.Message
//	handler.go                       server.ProtocolHandler
//
// # Locking
//
// The goroutine reading the connection owns its maps (sessions, links,
// transactions). A session's mutex guards what the queues' delivery
// goroutines and the journal's completions also touch (windows, credit,
// unsettled deliveries); the writer's mutex is taken last. No lock is held
// while calling the server, whose callbacks take them.
package amqp
