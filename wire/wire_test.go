package wire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func sampleFrames() []Frame {
	body := bytes.Repeat([]byte("x"), 1024)
	msg := Message{
		Address: "orders", Routing: RoutingAnycast, Durable: true, DuplicateID: "run1-42",
		Timestamp: 1764160000000000000,
		Properties: []Property{
			StringProp("s", "v"), Int64Prop("i", -7), BoolProp("b", true), BoolProp("f", false),
			BytesProp("raw", []byte{0, 1, 2}),
		},
		Body: body,
	}
	topo := Topology{Epoch: 3, Members: []Member{
		{NodeID: "n1", Role: "primary", State: "active", URL: "tcp://a:61616", Epoch: 3},
		{NodeID: "n1", Role: "backup", State: "waiting", URL: "tcp://b:61617", Epoch: 3},
	}}
	return []Frame{
		&Hello{MinVersion: 1, MaxVersion: 1, ClientID: "c", User: "u", Password: "p", ConnectionTTL: 60000, CheckPeriod: 30000, WantTopology: true},
		&Hello{MinVersion: 1, MaxVersion: 1},
		&Welcome{Version: 1, NodeID: "n1", ServerVersion: "0.1", ConnectionID: 9, ConnectionTTL: 60000, Topology: topo},
		&Welcome{Version: 1},
		&Error{Code: CodeAuthFailed, Message: "bad password"},
		&Ping{}, &Pong{},
		&topo,
		&Disconnect{Code: CodeShuttingDown, Message: "bye"},
		&Result{Code: CodeNotFound, Message: "no queue q"},
		&Result{},
		&CreateSession{Session: 1, Transacted: true, Name: "s1"},
		&CloseSession{Session: 1},
		&Commit{Session: 2}, &Rollback{Session: 3},
		&CreateQueue{Address: "a", Queue: "q", Routing: RoutingMulticast, Durable: true, Temporary: true},
		&DeleteQueue{Queue: "q"},
		&Send{Session: 5, Message: msg},
		&Send{Session: 5, Message: Message{Address: "a"}},
		&SendResult{Code: CodeOK, Duplicate: true},
		&SendResult{Code: CodeTooLarge, Message: "body 2000000 bytes"},
		&CreateConsumer{Session: 1, Consumer: 2, Queue: "q", Address: "a", Routing: RoutingAnycast, AutoCreate: true, Durable: true, InitialCredit: 1000},
		&ConsumerCreated{Code: CodeOK, Queue: "q"},
		&CloseConsumer{Consumer: 2},
		&Credit{Consumer: 2, N: 500},
		&Deliver{Consumer: 2, MessageID: 77, DeliveryCount: 2, Message: msg},
		&Ack{Consumer: 2, MessageIDs: []uint64{1, 2, 1 << 60}},
		&Ack{Consumer: 2},
		&AckConfirm{Code: CodeOK, Failed: []uint64{2}},
		&AckConfirm{Code: CodeInternal, Message: "x"},
		&ReplicaRegister{NodeID: "n1", Group: "pair1", URL: "tcp://b:61617", LocalSeq: 4},
		&ReplicaStart{NodeID: "n1", Seq: 5, StreamID: 1 << 40, Journals: 2},
		&ReplicaData{Seq: 5, Journal: JournalMessages, Segment: 12, Offset: 4096, Epoch: 5, SegmentSize: 10 << 20, Sealed: true, Oldest: 9, Data: body},
		&ReplicaData{Journal: JournalBindings},
		&ReplicaAck{Journal: JournalMessages, Segment: 12, Offset: 5120},
		&ReplicaSynced{Seq: 5, NodeID: "n1"},
		&ReplicaFailback{},
		&ReplicaHandover{Seq: 6},
		&Manage{Op: "queue.create", Args: []byte(`{"name":"q"}`)},
		&Manage{Op: "connection.list"},
		&ManageResult{Code: CodeNotFound, Message: "no such queue"},
		&ManageResult{Body: []byte(`{"purged":3}`)},
		&Send{Session: 5, Message: Message{Address: "a", Expiration: 1764160000000000009}},
		&SendLarge{Session: 5, Stream: 3, Size: 300 << 20, Message: Message{Address: "a", Durable: true, DuplicateID: "big", Expiration: 7}},
		&LargeChunk{Stream: 3, Data: body},
		&LargeChunk{Stream: 3, Last: true},
		&DeliverLarge{Consumer: 2, MessageID: 9, DeliveryCount: 1, Size: 1 << 30, Message: Message{Address: "a"}},
		&DeliverChunk{Consumer: 2, MessageID: 9, Last: true, Data: body},
		&ClusterJoin{NodeID: "n1", Name: "b1", Epoch: 4, Stream: "scale-down"},
		&ClusterJoin{},
		&ClusterJoined{Code: CodeOK, NodeID: "n2", Name: "b2", Group: "g", Epoch: 9, Watermark: 1 << 41},
		&ClusterJoined{Code: CodeUnavailable, Message: "stopping"},
		&ClusterMessages{Epoch: 4, Messages: []ClusterMessage{
			{ID: 12, Queues: []ClusterQueue{{Name: "q", Address: "a", Routing: RoutingAnycast, Flags: ClusterDurable, Deliveries: 3},
				{Name: "s", Address: "a", Routing: RoutingMulticast, Flags: ClusterDurable | ClusterAutoCreated}}, Message: msg},
			{ID: 13, Message: Message{Address: "a"}},
		}},
		&ClusterMessages{},
		&ClusterDupIDs{Epoch: 4, Addresses: []ClusterAddress{{Name: "a", Flags: ClusterAnycast | ClusterAutoCreated, IDs: []string{"x", "y"}}, {Name: "b"}}},
		&ClusterDupIDs{},
		&ClusterAck{Code: CodeOK, Watermark: 13, Stored: 1, Dropped: 1},
		&ClusterAck{Code: CodeUnavailable, Message: "epoch 3 is older than 4"},
		&BackupRequest{NodeID: "n1", Name: "b1", Store: "shared-store", InstanceDir: "/srv/b1", ConfigName: "/srv/b1/etc/broker.xml", Config: []byte("<configuration/>"),
			Listen: "tcp://0.0.0.0:61616", Dirs: []string{"/srv/b1/data/journal", "/srv/b1/data/bindings"}},
		&BackupRequest{},
		&BackupAnswer{Code: CodeOK, Name: "colocated_backup_1", URL: "tcp://127.0.0.1:61716"},
		&BackupAnswer{Code: CodeLimit, Message: "max-backups 1 reached"},
		&QuorumRequest{Kind: QuorumClaim, NodeID: "n1", From: 1, Seq: 2, Owner: 3, LeaseMs: 5000,
			Sender: QuorumMember{Voter: 7, URL: "tcp://a:61616", NodeID: "n1", Group: "g", Role: "primary", State: "active", Seq: 1}},
		&QuorumRequest{Kind: QuorumDepart, Sender: QuorumMember{Voter: 9}, Register: []QuorumEntry{{NodeID: "n1", Seq: 3, Owner: 4, From: 2, Leased: 3, LeasedOwner: 4}},
			Grants: []QuorumGrant{{NodeID: "n1", Owner: 4, RemainingMs: 1200}}, Voter: 9, View: QuorumView{Version: 2, Out: []uint64{4, 5}}, Electorate: 6},
		&QuorumRequest{Kind: QuorumCommit, View: QuorumView{Version: 3, Out: []uint64{4, 5, 9}}, ChangeVersion: 3, ChangeVoter: 9, ChangeDepart: true},
		&QuorumAnswer{Verdict: QuorumGranted, Voter: 8, Entry: QuorumEntry{NodeID: "n1", Seq: 2}, Self: QuorumMember{Voter: 8, State: "waiting"},
			Members: []QuorumMember{{Voter: 7, Departed: true}}, View: QuorumView{Version: 1, Out: []uint64{7}},
			Register: []QuorumEntry{{NodeID: "n1", Seq: 2, Owner: 1}}},
		&QuorumAnswer{Verdict: QuorumRefused, Reason: "membership version 2, not 1"},
		&ClusterBindings{NodeID: "n1", Epoch: 3, Sequence: 9, Queues: []ClusterBinding{
			{Name: "orders", Address: "orders", Routing: RoutingAnycast, Consumers: 2},
			{Name: "sub", Address: "news", Routing: RoutingMulticast, Filter: "color = 'red'"}}},
		&ClusterBindings{NodeID: "n2", ScaledDownTo: "n1"},
	}
}

func TestRoundTrip(t *testing.T) {
	var e Encoder
	frames := sampleFrames()
	for i, f := range frames {
		if err := e.Encode(uint64(i+1), f); err != nil {
			t.Fatalf("encode %v: %v", f.Type(), err)
		}
	}
	d := NewDecoder(bytes.NewReader(e.Bytes()))
	for i, want := range frames {
		h, got, err := d.Read()
		if err != nil {
			t.Fatalf("frame %d (%v): %v", i, want.Type(), err)
		}
		if h.Type != want.Type() || h.Corr != uint64(i+1) || h.Version != Version {
			t.Fatalf("frame %d: header %+v, want type %v corr %d", i, h, want.Type(), i+1)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("frame %d (%v):\n got %+v\nwant %+v", i, h.Type, got, want)
		}
	}
	if _, err := d.Next(); err != io.EOF {
		t.Fatalf("after last frame: %v, want io.EOF", err)
	}
}

func TestUnmarshalReuse(t *testing.T) {
	var e Encoder
	for _, f := range sampleFrames() {
		if s, ok := f.(*Send); ok {
			if err := e.Encode(1, s); err != nil {
				t.Fatal(err)
			}
		}
	}
	d := NewDecoder(bytes.NewReader(e.Bytes()))
	var s Send
	for i := 0; i < 2; i++ {
		if _, err := d.Next(); err != nil {
			t.Fatal(err)
		}
		if err := d.Unmarshal(&s); err != nil {
			t.Fatal(err)
		}
	}
	if s.Address != "a" || s.Properties != nil || s.Body != nil || s.Durable {
		t.Fatalf("reused Send kept stale fields: %+v", s)
	}
	if err := d.Unmarshal(&Ack{}); err == nil {
		t.Fatal("Unmarshal into a frame of another type succeeded")
	}
}

func TestEncodeRefuses(t *testing.T) {
	tests := []struct {
		name string
		f    Frame
		want error
	}{
		{"body over 1 MiB", &Send{Message: Message{Body: make([]byte, MaxBodySize+1)}}, ErrBodyTooLarge},
		{"frame over max", &Send{Message: Message{Body: make([]byte, MaxBodySize), Properties: []Property{BytesProp("p", make([]byte, MaxFrameSize))}}}, ErrFrameTooLarge},
		{"bad routing", &Send{Message: Message{Routing: 9}}, nil},
		{"bad kind", &Deliver{Message: Message{Properties: []Property{{Key: "k", Kind: 0}}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Encoder{}
			_ = e.Encode(1, &Ping{})
			n := e.Len()
			err := e.Encode(2, tt.f)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if e.Len() != n {
				t.Fatalf("buffer changed from %d to %d bytes after a refused frame", n, e.Len())
			}
		})
	}
	// exactly 1 MiB passes
	var e Encoder
	if err := e.Encode(1, &Send{Message: Message{Address: "q", Body: make([]byte, MaxBodySize)}}); err != nil {
		t.Fatalf("1 MiB body refused: %v", err)
	}
	_, f, err := NewDecoder(bytes.NewReader(e.Bytes())).Read()
	if err != nil || len(f.(*Send).Body) != MaxBodySize {
		t.Fatalf("1 MiB body did not round-trip: %v", err)
	}
}

func encodeOne(t *testing.T, f Frame) []byte {
	t.Helper()
	b, err := AppendFrame(nil, 1, f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reframe replaces a frame's type and payload and fixes length and CRC, to
// build well-framed but malformed payloads.
func reframe(typ Type, payload []byte) []byte {
	b := []byte{0, 0, 0, 0, Version, byte(typ), 0, 0, 0, 0, 0, 0, 0, 1}
	b = append(b, payload...)
	n := len(b) - 4 + 4
	b[0], b[1], b[2], b[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	crc := crcOf(b)
	return append(b, byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc))
}

func TestDecodeErrors(t *testing.T) {
	good := encodeOne(t, &Send{Session: 1, Message: Message{Address: "q", Body: []byte("hello")}})
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 0x40; return b }
	tests := []struct {
		name   string
		in     []byte
		frame  bool   // want a *FrameError
		reason string // substring of the reason
		err    error  // or this error
	}{
		{"empty stream", nil, false, "", io.EOF},
		{"cut in length", good[:2], false, "", io.ErrUnexpectedEOF},
		{"cut in payload", good[:len(good)-1], false, "", io.ErrUnexpectedEOF},
		{"bad CRC in body", flip(len(good) - 6), true, "CRC", nil},
		{"bad CRC in crc", flip(len(good) - 1), true, "CRC", nil},
		{"too short", []byte{0, 0, 0, 3, 1, 1, 1}, true, "shorter", nil},
		{"too long", []byte{0x7f, 0, 0, 0}, true, "exceeds", nil},
		{"unknown type", reframe(200, nil), true, "unknown frame type", nil},
		{"version 0", func() []byte { b := reframe(TypePing, nil); b[4] = 0; return fixCRC(b) }(), true, "version 0", nil},
		{"newer version", func() []byte { b := reframe(TypePing, nil); b[4] = 9; return fixCRC(b) }(), true, "unsupported version", nil},
		{"trailing bytes", reframe(TypePing, []byte{1}), true, "trailing", nil},
		{"truncated field", reframe(TypeCredit, []byte{0, 0, 0}), true, "truncated", nil},
		{"string past end", reframe(TypeDeleteQueue, []byte{50, 'a'}), true, "exceeds remaining", nil},
		{"huge count", reframe(TypeAck, []byte{0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}), true, "count", nil},
		{"bad bool", reframe(TypeCreateSession, []byte{0, 0, 0, 0, 0, 0, 0, 1, 2, 0}), true, "bool", nil},
		{"bad varint", reframe(TypeDeleteQueue, bytes.Repeat([]byte{0xff}, 11)), true, "varint", nil},
		{"bad routing", reframe(TypeCreateQueue, []byte{0, 0, 7, 0, 0}), true, "routing", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := NewDecoder(bytes.NewReader(tt.in)).Read()
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("error %v, want %v", err, tt.err)
				}
				return
			}
			var fe *FrameError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T), want *FrameError", err, err)
			}
			if !strings.Contains(fe.Reason, tt.reason) || fe.Offset != 0 {
				t.Fatalf("error %q at %d, want reason containing %q at offset 0", fe.Reason, fe.Offset, tt.reason)
			}
		})
	}
}

func TestFrameErrorOffset(t *testing.T) {
	a := encodeOne(t, &Ping{})
	b := reframe(TypePing, []byte{1})
	d := NewDecoder(bytes.NewReader(append(a, b...)))
	if _, _, err := d.Read(); err != nil {
		t.Fatal(err)
	}
	_, _, err := d.Read()
	var fe *FrameError
	if !errors.As(err, &fe) || fe.Offset != int64(len(a)) || fe.Type != TypePing {
		t.Fatalf("got %v, want a Ping FrameError at offset %d", err, len(a))
	}
	if !strings.Contains(err.Error(), "offset 18") {
		t.Fatalf("error text %q does not name the offset", err)
	}
}

func TestNewerHelloAccepted(t *testing.T) {
	b := encodeOne(t, &Hello{MinVersion: 1, MaxVersion: 3, ClientID: "x"})
	// a version-3 client's Hello: header version 3 and an extra field
	b = b[:len(b)-4]
	b[4] = 3
	b = append(b, 0xAA, 0xBB)
	n := len(b)
	b[0], b[1], b[2], b[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	b = fixCRC(append(b, 0, 0, 0, 0))
	h, f, err := NewDecoder(bytes.NewReader(b)).Read()
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != 3 || f.(*Hello).MaxVersion != 3 || f.(*Hello).ClientID != "x" {
		t.Fatalf("got %+v %+v", h, f)
	}
}

func TestNames(t *testing.T) {
	for _, f := range sampleFrames() {
		if strings.HasPrefix(f.Type().String(), "Type(") || NewFrame(f.Type()) == nil {
			t.Errorf("%v has no name or constructor", f.Type())
		}
	}
	if Type(199).String() != "Type(199)" || Code(99).String() != "code 99" || CodeTooLarge.String() != "too large" {
		t.Error("fallback names wrong")
	}
	if RoutingMulticast.String() != "multicast" || BoolProp("b", true).Value() != true || Int64Prop("i", 3).Value() != int64(3) {
		t.Error("names or values wrong")
	}
}

// TestQuorumFramesWithoutMembership: quorum frames of a broker of an
// earlier version (without the membership block) decode as view 0.
func TestQuorumFramesWithoutMembership(t *testing.T) {
	req := &QuorumRequest{Kind: QuorumInfo, NodeID: "n1", Sender: QuorumMember{Voter: 7}}
	full := req.appendPayload(nil)
	block := appendU32(appendBool(appendU64(appendU64(appendQuorumView(appendU64(nil, 0), &QuorumView{}), 0), 0), false), 0)
	_, f, err := NewDecoder(bytes.NewReader(reframe(TypeQuorumRequest, full[:len(full)-len(block)]))).Read()
	if err != nil {
		t.Fatalf("a request without the membership block: %v", err)
	}
	if got := f.(*QuorumRequest); got.View.Version != 0 || got.Voter != 0 || got.NodeID != "n1" {
		t.Fatalf("decoded %+v", got)
	}
	ans := &QuorumAnswer{Verdict: QuorumGranted, Voter: 3}
	full = ans.appendPayload(nil)
	block = appendCount(appendQuorumView(nil, &QuorumView{}), 0)
	_, f, err = NewDecoder(bytes.NewReader(reframe(TypeQuorumAnswer, full[:len(full)-len(block)]))).Read()
	if err != nil {
		t.Fatalf("an answer without the membership block: %v", err)
	}
	if got := f.(*QuorumAnswer); got.View.Version != 0 || got.Voter != 3 {
		t.Fatalf("decoded %+v", got)
	}
}

// TestClusterBindingsGarbage: every truncation and every single-byte
// change of a ClusterBindings payload decodes to a FrameError or to a
// frame that encodes back to itself, never a panic.
func TestClusterBindingsGarbage(t *testing.T) {
	f := &ClusterBindings{NodeID: "n1", Epoch: 3, Sequence: 9, ScaledDownTo: "n2", Queues: []ClusterBinding{
		{Name: "orders", Address: "orders", Routing: RoutingAnycast, Consumers: 2},
		{Name: "sub", Address: "news", Routing: RoutingMulticast, Filter: "color = 'red'"}}}
	payload := f.appendPayload(nil)
	try := func(p []byte) {
		t.Helper()
		_, fr, err := NewDecoder(bytes.NewReader(reframe(TypeClusterBindings, p))).Read()
		if err != nil {
			var fe *FrameError
			if !errors.As(err, &fe) {
				t.Fatalf("payload %x: error %T %v, want a FrameError", p, err, err)
			}
			return
		}
		b := fr.(*ClusterBindings)
		if got := b.appendPayload(nil); !bytes.Equal(got, p) {
			t.Fatalf("payload %x decoded to %+v, which encodes to %x", p, b, got)
		}
	}
	for i := 0; i <= len(payload); i++ {
		try(payload[:i])
	}
	for i := range payload {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			p := bytes.Clone(payload)
			p[i] ^= x
			try(p)
		}
	}
}
