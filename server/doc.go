// Package server is the broker core: addresses with anycast and multicast
// routing, durable and temporary queues, persistent and non-persistent
// messages, consumers with credit flow control, individual acks,
// redelivery, local transactions and duplicate detection, persisted
// through two journals (bindings and messages); plus the network layer
// (acceptors and connections speaking package wire) and the management
// HTTP endpoint (/status, /metrics, /debug/pprof/ when enabled, the
// management API under /api/ and the web console at /, embedded from
// console/; httpserver.go is the server with its timeouts and bounds).
//
// Management operations (manage.go, manageapi.go: create and delete
// addresses and queues, purge, pause and resume, browse, move, list
// connections and consumers) go through one dispatcher, Server.Manage,
// which the HTTP API (mgmthttp.go) and the wire protocol's Manage frame
// both call; each change is journaled before it is answered.
//
// Limits against misbehaving clients (docs/limits.md): per connection, the
// bytes queued for the client are bounded by water marks (past the high
// one the connection reads no more requests and its consumers get no more
// credit: a consumer's credit reaches the server in small windows), a
// client that takes no byte for the write timeout is disconnected, and a
// frame's memory follows the bytes received (at most 16 KiB before the
// handshake); per acceptor and broker-wide, connections are limited; the
// TTL a client asks for is capped; log lines about clients clip their
// strings and are rate-limited; the management server has timeouts and a
// connection bound.
//
// Security (security.go, tls.go; docs/security.md): each acceptor logs its
// clients in through an auth.Guard and puts the subject in the connection's
// context before any protocol handler runs; the server checks the subject's
// permission where each operation happens (send, consume, queue and address
// creation and deletion, auto-create included, management operations).
// With NetOptions.TLS every connection is TLS, the protocol detected inside.
//
// Scale-down (issue 19): Freeze (freeze.go) stops client work without
// closing connections; ExportMessages and AckExported (scaledown.go) give
// a frozen server's messages away; a cluster connection (a Hello with
// wire.ClusterClientID and the cluster credentials, cluster.go) stores
// another broker's moved messages with that broker's watermark in the
// same append, so a resend is dropped.
//
// Message load balancing and redistribution between live brokers
// (forward.go, docs/clustering.md): a send may route a queue's copy to a
// peer's queue of the same name instead (SetLoadBalancing,
// SetRemoteBindings); it goes, in the send's own append, to the peer's
// durable forwarding queue with a RecForwardRoute record; the broker
// package's bridge drains it (TakeForward, AckForward once the peer holds
// it durably, ReturnForward otherwise), each message with a forward ID
// the peer's duplicate-ID cache checks. Redistribute moves the messages
// of queues without local consumers there; ReclaimForward takes back
// what waited for a peer that scaled down. Messages moved here keep the
// broker their producer sent them to (RecMessageOrigin).
//
// HA activation drives it from outside: open a Store and New+Start under
// the activation's epoch (and node ID), Listen to serve, SetTopology to
// announce, Acceptor.Close and Close to stop; Options.CanAck is consulted
// before every confirmation.
//
// Durability rules it keeps: a persistent send is confirmed only once its
// journal records are durable; an ack is confirmed only once its record is
// durable; once a journal has failed nothing more is confirmed.
//
// Record lifecycle in the messages journal (as in Artemis): an Add of the
// message (type RecMessage), an Update per durable queue it was routed to
// (RecAddRef), an Update per ack (RecAckRef), a Delete once no queue holds
// it any more. Duplicate IDs are Add records of type RecDuplicateID,
// deleted when evicted from the per-address cache. The bindings journal
// holds queues (RecQueue), addresses (RecAddress), the node ID
// (RecNodeID) and paused queues (RecQueuePaused, deleted on resume).
//
// Address settings apply per address (address.policy): a delivery that
// ends unacknowledged max-delivery-attempts times moves the message to
// the dead-letter address, an expired one goes to the expiry address
// (deadletter.go: a copy and the original's ack in one append, as a
// transaction), a redelivered one waits its redelivery delay in its
// queue's deque. Queue filters (<addresses>) and consumer selectors are
// package selector's; dispatch looks past the head only when a consumer
// has a selector or a message is delayed (Queue.scanLocked).
//
// Paging (paging.go, pageload.go, pagerecords.go, pagestatus.go): past
// max-size-bytes or global-max-size an address applies its
// address-full-policy; PAGE writes new messages to a third journal in log
// mode (Options.Pages), read back in order by the pager goroutine;
// acknowledgements and per-queue cursors are records in the messages
// journal (RecPageAck, RecPageCursor), a paging transaction's commit a
// RecPageTx record. Memory is charged per message (charge, release).
//
// Large messages (large.go, largeconn.go): a body sent in chunks (wire
// SendLarge, LargeChunk) goes chunk by chunk to a fourth journal in log
// mode (Options.Large); the message keeps the chunks' positions (message
// record format 3) and is stored like any other once they are durable;
// deliveries stream the chunks from the journal as the socket drains, in
// pieces that keep the connection's output within its water marks (a large
// delivery alone never blocks the connection's reader); a large send needs
// the send permission when it begins, and a connection's uploads are
// bounded (maxUploads, maxMemUploads).
//
// Local transactions are buffered in memory and written as ONE Append at
// commit: an Append is atomic, so the transaction's sends and acks become
// durable together or not at all, replay needs no transaction records, and
// a rollback writes nothing.
//
// It must never confirm anything before it is durable, never retry a failed
// journal operation, and never start serving before both journals loaded.
// It does not own the journals (the caller opens and closes them) nor the
// lock files (package lockfile) nor HA activation (package ha).
package server
