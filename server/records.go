package server

import (
	"encoding/binary"
	"fmt"
)

// Record types in the messages journal (journal.Entry.Type and
// journal.Update.Type). The values are part of the on-disk format: never
// renumber them.
const (
	// RecMessage is a message (Add); Data is the encoded message.
	RecMessage uint8 = 1
	// RecAddRef is an Update of a message: routed to the queue whose ID is
	// Data (uvarint).
	RecAddRef uint8 = 2
	// RecAckRef is an Update of a message: acknowledged on queue Data.
	RecAckRef uint8 = 3
	// RecDeliveryCount is an Update of a message: queue ID and delivery
	// count (two uvarints), written when deliveries are cancelled.
	RecDeliveryCount uint8 = 4
	// RecDuplicateID is an Add: an entry of an address's duplicate ID
	// cache; Data is the address and the ID (two length-prefixed strings).
	RecDuplicateID uint8 = 5
)

// Record types in the bindings journal.
const (
	// RecQueue is a queue (Add); Data is the encoded queue.
	RecQueue uint8 = 20
	// RecAddress is an address (Add); Data is the encoded address.
	RecAddress uint8 = 21
	// RecNodeID is the broker's node ID (Add); Data is the UUID string.
	RecNodeID uint8 = 22
	// RecQueuePaused marks a queue paused (Add; Data is the queue's ID,
	// uvarint); resuming deletes it (as Artemis's queue status record).
	RecQueuePaused uint8 = 23
)

const bindingFormat = 1

// queueRecord is a queue as the bindings journal stores it.
type queueRecord struct {
	Name        string
	Address     string
	Routing     Routing
	Durable     bool
	AutoCreated bool
	// Filter is the queue's selector ("" none): flag 4, then the filter
	// string after the address (since <addresses>; older records lack it).
	Filter string
}

// queueFlags are the flag bits a queue record may carry.
const queueFlags = 1 | 2 | 4

func encodeQueue(q queueRecord) []byte {
	b := make([]byte, 0, 12+len(q.Name)+len(q.Address)+len(q.Filter))
	var flags byte
	if q.Durable {
		flags |= 1
	}
	if q.AutoCreated {
		flags |= 2
	}
	if q.Filter != "" {
		flags |= 4
	}
	b = append(b, bindingFormat, byte(q.Routing), flags)
	b = appendString(b, q.Name)
	b = appendString(b, q.Address)
	if q.Filter != "" {
		b = appendString(b, q.Filter)
	}
	return b
}

func decodeQueue(b []byte) (queueRecord, error) {
	d := decoder{b: b}
	var q queueRecord
	if f := d.byte(); f != bindingFormat && d.err == nil {
		return q, fmt.Errorf("queue record: unknown format %d", f)
	}
	q.Routing = Routing(d.byte())
	flags := d.byte()
	if flags&^queueFlags != 0 && d.err == nil {
		return q, fmt.Errorf("queue record: unknown flags %#x (written by a newer version?)", flags)
	}
	q.Durable = flags&1 != 0
	q.AutoCreated = flags&2 != 0
	q.Name = d.string()
	q.Address = d.string()
	if flags&4 != 0 {
		q.Filter = d.string()
		if q.Filter == "" && d.err == nil {
			return q, fmt.Errorf("queue record: empty filter")
		}
	}
	if d.err == nil && (q.Routing != Anycast && q.Routing != Multicast) {
		return q, fmt.Errorf("queue record: bad routing %d", q.Routing)
	}
	if d.err == nil && d.off != len(b) {
		return q, fmt.Errorf("queue record: offset %d: trailing bytes", d.off)
	}
	if d.err != nil {
		return q, fmt.Errorf("queue record: %w", d.err)
	}
	return q, nil
}

// addressRecord is an address as the bindings journal stores it.
type addressRecord struct {
	Name        string
	Anycast     bool
	Multicast   bool
	AutoCreated bool // flag 4, since auto-delete: older records lack it (kept forever)
}

// addressFlags are the flag bits an address record may carry.
const addressFlags = 1 | 2 | 4

func encodeAddress(a addressRecord) []byte {
	var flags byte
	if a.Anycast {
		flags |= 1
	}
	if a.Multicast {
		flags |= 2
	}
	if a.AutoCreated {
		flags |= 4
	}
	b := append(make([]byte, 0, 4+len(a.Name)), bindingFormat, flags)
	return appendString(b, a.Name)
}

func decodeAddress(b []byte) (addressRecord, error) {
	d := decoder{b: b}
	var a addressRecord
	if f := d.byte(); f != bindingFormat && d.err == nil {
		return a, fmt.Errorf("address record: unknown format %d", f)
	}
	flags := d.byte()
	if flags&^addressFlags != 0 && d.err == nil {
		return a, fmt.Errorf("address record: unknown flags %#x (written by a newer version?)", flags)
	}
	a.Anycast = flags&1 != 0
	a.Multicast = flags&2 != 0
	a.AutoCreated = flags&4 != 0
	a.Name = d.string()
	if d.err == nil && d.off != len(b) {
		return a, fmt.Errorf("address record: offset %d: trailing bytes", d.off)
	}
	if d.err != nil {
		return a, fmt.Errorf("address record: %w", d.err)
	}
	return a, nil
}

func encodeDuplicateID(address, id string) []byte {
	b := make([]byte, 0, 2*binary.MaxVarintLen32+len(address)+len(id))
	b = appendString(b, address)
	return appendString(b, id)
}

func decodeDuplicateID(b []byte) (address, id string, err error) {
	d := decoder{b: b}
	address = d.string()
	id = d.string()
	if d.err == nil && d.off != len(b) {
		return "", "", fmt.Errorf("duplicate ID record: offset %d: trailing bytes", d.off)
	}
	if d.err != nil {
		return "", "", fmt.Errorf("duplicate ID record: %w", d.err)
	}
	return address, id, nil
}

func encodeQueueID(id uint64) []byte { return binary.AppendUvarint(nil, id) }

func decodeQueueID(b []byte) (uint64, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 || n != len(b) {
		return 0, fmt.Errorf("queue reference: bad queue ID (%d bytes)", len(b))
	}
	return v, nil
}

func encodeDeliveryCount(queueID uint64, count uint32) []byte {
	b := binary.AppendUvarint(make([]byte, 0, 12), queueID)
	return binary.AppendUvarint(b, uint64(count))
}

func decodeDeliveryCount(b []byte) (queueID uint64, count uint32, err error) {
	q, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, 0, fmt.Errorf("delivery count: bad queue ID")
	}
	c, m := binary.Uvarint(b[n:])
	if m <= 0 || n+m != len(b) || c > 1<<31 {
		return 0, 0, fmt.Errorf("delivery count: bad count")
	}
	return q, uint32(c), nil
}
