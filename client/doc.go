// Package client is Tandem's Go client: Dial a broker (or a live/backup
// pair), open sessions, send with producers and receive with consumers.
//
//	conn, err := client.Dial(ctx, "tcp://localhost:61616")
//	sess, err := conn.CreateSession(ctx)
//	p := sess.CreateProducer(client.Queue("orders"))
//	err = p.Send(ctx, &client.Message{Body: []byte("hello")}) // returns once stored
//	k, err := sess.CreateConsumer(ctx, client.Queue("orders"))
//	m, err := k.Receive(ctx)
//	err = k.Ack(ctx, m) // returns once the ack is durable
//
// It owns the client side of the wire protocol (package wire): one TCP
// connection per Conn with a reader goroutine and batched writes,
// correlation of answers, heartbeats, producer windows, consumer credit,
// pipelined acks, transactions, and reconnection/failover. It never
// retries anything whose outcome it cannot know without saying so:
// ErrUnknownOutcome is returned for a send, ack or commit whose connection
// was lost, except durable sends, which carry a duplicate ID and are
// resent after failover (the broker stores them once). Nothing whose
// meaning depends on a session's state on one connection (a commit, a
// rollback, a transacted send or ack) is ever sent to, or answered by,
// another: see session.go, "Transactions across a connection loss", and
// docs/client-failover.md for what each error means to the application.
//
// Failover: with reconnectAttempts != 0 (the default under ha=true, see
// URL), a lost connection is retried as the URL says: each attempt tries
// the live/backup pair the broker announced (the other member first), then
// the URL's addresses, pausing retryInterval (times the multiplier, up to
// maxRetryInterval) between attempts. On success the client re-creates its
// sessions and consumers with their original IDs, drops deliveries not yet
// received (the broker redelivers them), and resends in-flight durable
// sends in their original order before any new send. In-flight acks and
// commits are reported as ErrUnknownOutcome as soon as the loss is noticed
// (not when the failover ends), acks not yet sent as ErrStaleDelivery, and
// a transaction with work on the lost connection is rolled back: its next
// Commit returns ErrTransactionRolledBack at once, without waiting for the
// failover. A failure listener (WithFailureListener) hears "failing over",
// "failed over" and "failed", also when reconnection is off.
//
// Callbacks (SendAsync's and AckAsync's) run on the reader goroutine: keep
// them short and never block in them on the same Conn.
package client
