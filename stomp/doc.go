// Package stomp serves STOMP 1.2 (and 1.0, 1.1) on the broker's acceptors,
// over the server package's in-process API: a Handler registered with
// server.RegisterProtocol gets every connection whose first bytes are
// CONNECT, STOMP or a heart-beat EOL, and maps its frames onto one
// server.Session (sends, subscriptions, acks) plus a transacted session per
// open transaction (BEGIN/COMMIT/ABORT).
//
// # Durability (what a client is told, and when)
//
//   - RECEIPT of a SEND: once the server's done callback reports it stored,
//     which for a persistent message (persistent:true) routed to a durable
//     queue is once its journal records are durable. A failed send is an
//     ERROR frame (with receipt-id) and the connection closes: never a
//     RECEIPT.
//   - RECEIPT of an ACK: once the ack's journal record is durable. NACK
//     gives the message back for redelivery.
//   - A SEND or ACK with a transaction header is held in the transaction;
//     COMMIT's RECEIPT comes once all of it is durable in one atomic
//     journal append. ABORT (or a connection lost) rolls it back.
//   - ack:auto acknowledges a message once its MESSAGE frame has been
//     written to the socket (at most once, as in every STOMP broker).
//   - DISCONNECT's RECEIPT comes after every earlier operation's outcome.
//
// # Bounds (a hostile or stuck client)
//
// A frame's headers are limited to 64 KiB and 1000 headers, its body to
// server.MaxBodySize; a content-length above the limit is refused before
// the body is read or allocated, and a body's memory grows with the bytes
// that arrive, not to the content-length announced. A connection has at
// most 1024 operations (8 MiB of bodies) waiting for the journal, and
// stops reading while 4 MiB of answers wait to be written; deliveries are
// limited by each subscription's window (Options). A write that makes no
// progress for max(TTL, 30 s) closes the connection; so does silence for
// the TTL (heart-beat cx times 2, as Artemis, capped by
// connection-ttl-max, else the acceptor's connectionTtl or the broker's
// connection TTL). Bad input is an ERROR frame, then close; it never
// stops other connections.
//
// The frame decoder (Decoder) never panics on input and is fuzzed
// (FuzzDecoder). The message mapping and the acceptor parameters are in
// docs/protocols.md. Client is a minimal STOMP client for `tandem bench
// --protocol stomp` and tests.
//
// It never confirms anything the server has not confirmed, and never
// imports anything above package server.
package stomp
