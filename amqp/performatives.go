package amqp

import "fmt"

// The performatives and the types they carry (part 2, section 2.7; part
// 3 for delivery states, sources and targets; part 4 for transactions;
// part 5 for SASL). Each has a decode (from the list after its
// descriptor) and, for those the broker sends, an append.

// Error is an AMQP error (amqp:error:list).
type Error struct {
	Condition   Symbol
	Description string
	Info        Map
}

func (e *Error) Error() string {
	if e.Description == "" {
		return string(e.Condition)
	}
	return fmt.Sprintf("%s: %s", e.Condition, e.Description)
}

// Error conditions (part 2, section 2.8.15 and following).
const (
	ErrInternal             Symbol = "amqp:internal-error"
	ErrNotFound             Symbol = "amqp:not-found"
	ErrUnauthorizedAccess   Symbol = "amqp:unauthorized-access"
	ErrDecode               Symbol = "amqp:decode-error"
	ErrResourceLimit        Symbol = "amqp:resource-limit-exceeded"
	ErrNotAllowed           Symbol = "amqp:not-allowed"
	ErrInvalidField         Symbol = "amqp:invalid-field"
	ErrNotImplemented       Symbol = "amqp:not-implemented"
	ErrPreconditionFailed   Symbol = "amqp:precondition-failed"
	ErrIllegalState         Symbol = "amqp:illegal-state"
	ErrFrameSizeTooSmall    Symbol = "amqp:frame-size-too-small"
	ErrConnectionForced     Symbol = "amqp:connection:forced"
	ErrFramingError         Symbol = "amqp:connection:framing-error"
	ErrWindowViolation      Symbol = "amqp:session:window-violation"
	ErrErrantLink           Symbol = "amqp:session:errant-link"
	ErrHandleInUse          Symbol = "amqp:session:handle-in-use"
	ErrUnattachedHandle     Symbol = "amqp:session:unattached-handle"
	ErrDetachForced         Symbol = "amqp:link:detach-forced"
	ErrTransferLimit        Symbol = "amqp:link:transfer-limit-exceeded"
	ErrMessageSizeExceeded  Symbol = "amqp:link:message-size-exceeded"
	ErrTransactionUnknownID Symbol = "amqp:transaction:unknown-id"
	ErrTransactionRollback  Symbol = "amqp:transaction:rollback"
)

func decodeError(d *decoder) *Error {
	if d.null() {
		return nil
	}
	code, known := d.descriptor()
	if d.err == nil && (!known || code != descError) {
		d.fail("want an error, got descriptor 0x%x", code)
	}
	e := &Error{}
	n, end := d.list()
	for i := 0; i < n && d.err == nil; i++ {
		switch i {
		case 0:
			e.Condition = d.symbolField()
		case 1:
			e.Description = d.stringField()
		case 2:
			e.Info = d.mapField()
		default:
			d.skip()
		}
	}
	d.endList(end)
	if d.err != nil {
		return nil
	}
	return e
}

func appendError(b []byte, e *Error) []byte {
	if e == nil {
		return appendNull(b)
	}
	b = appendDescriptor(b, descError)
	b, c := startList(b)
	b = appendSymbol(c.field(b), e.Condition)
	if e.Description != "" {
		b = appendString(c.field(b), e.Description)
	} else {
		c.null()
	}
	if len(e.Info) > 0 {
		b = c.field(b)
		if nb, err := appendValue(b, e.Info); err == nil {
			b = nb
		} else {
			b = appendNull(b)
		}
	}
	return c.end(b)
}

// Open is the open performative.
type Open struct {
	ContainerID  string
	Hostname     string
	MaxFrameSize uint32 // default 4294967295
	ChannelMax   uint16 // default 65535
	IdleTimeout  uint32 // milliseconds; 0: none
	OfferedCaps  []Symbol
	DesiredCaps  []Symbol
	Properties   Map
}

func (o *Open) decode(d *decoder) {
	o.MaxFrameSize, o.ChannelMax = 4294967295, 65535
	n, end := d.list()
	for i := 0; i < n && d.err == nil; i++ {
		switch i {
		case 0:
			o.ContainerID = d.stringField()
		case 1:
			o.Hostname = d.stringField()
		case 2:
			o.MaxFrameSize = d.uint32Field(4294967295)
		case 3:
			v := d.uint32Field(65535)
			if v > 65535 {
				v = 65535
			}
			o.ChannelMax = uint16(v)
		case 4:
			o.IdleTimeout = d.uint32Field(0)
		case 7:
			o.OfferedCaps = d.symbolsField()
		case 8:
			o.DesiredCaps = d.symbolsField()
		case 9:
			o.Properties = d.mapField()
		default:
			d.skip()
		}
	}
	d.endList(end)
}

func (o *Open) append(b []byte) []byte {
	b = appendDescriptor(b, descOpen)
	b, c := startList(b)
	b = appendString(c.field(b), o.ContainerID)
	if o.Hostname != "" {
		b = appendString(c.field(b), o.Hostname)
	} else {
		c.null()
	}
	b = appendUint(c.field(b), o.MaxFrameSize)
	b = appendUshort(c.field(b), o.ChannelMax)
	if o.IdleTimeout > 0 {
		b = appendUint(c.field(b), o.IdleTimeout)
	} else {
		c.null()
	}
	c.null() // outgoing-locales
	c.null() // incoming-locales
	if len(o.OfferedCaps) > 0 {
		b = appendSymbols(c.field(b), o.OfferedCaps)
	} else {
		c.null()
	}
	if len(o.DesiredCaps) > 0 {
		b = appendSymbols(c.field(b), o.DesiredCaps)
	} else {
		c.null()
	}
	if len(o.Properties) > 0 {
		b = c.field(b)
		if nb, err := appendValue(b, o.Properties); err == nil {
			b = nb
		} else {
			b = appendNull(b)
		}
	}
	return c.end(b)
}

// Begin is the begin performative.
type Begin struct {
	RemoteChannel    uint16
	HasRemoteChannel bool
	NextOutgoingID   uint32
	IncomingWindow   uint32
	OutgoingWindow   uint32
	HandleMax        uint32 // default 4294967295
}

func (o *Begin) decode(d *decoder) {
	o.HandleMax = 4294967295
	n, end := d.list()
	if n < 4 && d.err == nil {
		d.fail("begin with %d fields, want at least 4", n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		switch i {
		case 0:
			v, ok := d.optUint32()
			if ok && v > 65535 {
				d.fail("remote-channel %d", v)
			}
			o.RemoteChannel, o.HasRemoteChannel = uint16(v), ok
		case 1:
			o.NextOutgoingID = d.uint32Field(0)
		case 2:
			o.IncomingWindow = d.uint32Field(0)
		case 3:
			o.OutgoingWindow = d.uint32Field(0)
		case 4:
			o.HandleMax = d.uint32Field(4294967295)
		default:
			d.skip()
		}
	}
	d.endList(end)
}

func (o *Begin) append(b []byte) []byte {
	b = appendDescriptor(b, descBegin)
	b, c := startList(b)
	if o.HasRemoteChannel {
		b = appendUshort(c.field(b), o.RemoteChannel)
	} else {
		c.null()
	}
	b = appendUint(c.field(b), o.NextOutgoingID)
	b = appendUint(c.field(b), o.IncomingWindow)
	b = appendUint(c.field(b), o.OutgoingWindow)
	b = appendUint(c.field(b), o.HandleMax)
	return c.end(b)
}

// Terminus is a source or target (or, for Coordinator set, a transaction
// coordinator target).
type Terminus struct {
	Address          string
	HasAddress       bool
	Durable          uint32 // 0 none, 1 configuration, 2 unsettled-state
	ExpiryPolicy     Symbol // default session-end
	Timeout          uint32
	Dynamic          bool
	DynamicNodeProps Map
	DistributionMode Symbol // sources only
	Filter           Map    // sources only
	DefaultOutcome   any    // sources only (kept undecoded)
	Outcomes         []Symbol
	Capabilities     []Symbol
	Coordinator      bool // a coordinator (part 4): only Capabilities apply
}

// hasCapability reports whether c is among the terminus's capabilities.
func (t *Terminus) hasCapability(c Symbol) bool {
	for _, x := range t.Capabilities {
		if x == c {
			return true
		}
	}
	return false
}

// decodeTerminus reads a source or target; null gives nil.
func decodeTerminus(d *decoder, source bool) *Terminus {
	if d.null() {
		return nil
	}
	code, known := d.descriptor()
	t := &Terminus{ExpiryPolicy: "session-end"}
	switch {
	case d.err != nil:
		return nil
	case known && code == descCoordinator && !source:
		t.Coordinator = true
		n, end := d.list()
		for i := 0; i < n && d.err == nil; i++ {
			if i == 0 {
				t.Capabilities = d.symbolsField()
			} else {
				d.skip()
			}
		}
		d.endList(end)
		return t
	case !known || (source && code != descSource) || (!source && code != descTarget):
		d.fail("unexpected terminus descriptor 0x%x", code)
		return nil
	}
	n, end := d.list()
	for i := 0; i < n && d.err == nil; i++ {
		switch i {
		case 0:
			if !d.null() {
				// address-string is a string; some peers send a symbol.
				t.Address, t.HasAddress = d.stringField(), true
			}
		case 1:
			t.Durable = d.uint32Field(0)
		case 2:
			if !d.null() {
				t.ExpiryPolicy = d.symbolField()
			}
		case 3:
			t.Timeout = d.uint32Field(0)
		case 4:
			t.Dynamic = d.boolField(false)
		case 5:
			t.DynamicNodeProps = d.mapField()
		}
		if i <= 5 {
			continue
		}
		if !source {
			if i == 6 {
				t.Capabilities = d.symbolsField()
			} else {
				d.skip()
			}
			continue
		}
		switch i {
		case 6:
			if !d.null() {
				t.DistributionMode = d.symbolField()
			}
		case 7:
			t.Filter = d.mapField()
		case 8:
			t.DefaultOutcome = d.value()
		case 9:
			t.Outcomes = d.symbolsField()
		case 10:
			t.Capabilities = d.symbolsField()
		default:
			d.skip()
		}
	}
	d.endList(end)
	if d.err != nil {
		return nil
	}
	return t
}

func appendTerminus(b []byte, t *Terminus, source bool) []byte {
	if t == nil {
		return appendNull(b)
	}
	if t.Coordinator {
		b = appendDescriptor(b, descCoordinator)
		b, c := startList(b)
		if len(t.Capabilities) > 0 {
			b = appendSymbols(c.field(b), t.Capabilities)
		}
		return c.end(b)
	}
	if source {
		b = appendDescriptor(b, descSource)
	} else {
		b = appendDescriptor(b, descTarget)
	}
	b, c := startList(b)
	if t.HasAddress {
		b = appendString(c.field(b), t.Address)
	} else {
		c.null()
	}
	if t.Durable != 0 {
		b = appendUint(c.field(b), t.Durable)
	} else {
		c.null()
	}
	if t.ExpiryPolicy != "" && t.ExpiryPolicy != "session-end" {
		b = appendSymbol(c.field(b), t.ExpiryPolicy)
	} else {
		c.null()
	}
	if t.Timeout != 0 {
		b = appendUint(c.field(b), t.Timeout)
	} else {
		c.null()
	}
	if t.Dynamic {
		b = appendBool(c.field(b), true)
	} else {
		c.null()
	}
	if len(t.DynamicNodeProps) > 0 {
		b = c.field(b)
		if nb, err := appendValue(b, t.DynamicNodeProps); err == nil {
			b = nb
		} else {
			b = appendNull(b)
		}
	} else {
		c.null()
	}
	if source {
		if t.DistributionMode != "" {
			b = appendSymbol(c.field(b), t.DistributionMode)
		} else {
			c.null()
		}
		if len(t.Filter) > 0 { // the filters applied (a selector)
			b = c.field(b)
			if nb, err := appendValue(b, t.Filter); err == nil {
				b = nb
			} else {
				b = appendNull(b)
			}
		} else {
			c.null()
		}
		c.null() // default-outcome
		if len(t.Outcomes) > 0 {
			b = appendSymbols(c.field(b), t.Outcomes)
		} else {
			c.null()
		}
	}
	if len(t.Capabilities) > 0 {
		b = appendSymbols(c.field(b), t.Capabilities)
	}
	return c.end(b)
}

// Attach is the attach performative.
type Attach struct {
	Name                 string
	Handle               uint32
	Role                 bool // false: sender, true: receiver
	SndSettleMode        uint8
	RcvSettleMode        uint8
	Source               *Terminus
	Target               *Terminus
	IncompleteUnsettled  bool
	InitialDeliveryCount uint32
	MaxMessageSize       uint64
	OfferedCaps          []Symbol
	DesiredCaps          []Symbol
	Properties           Map
}

// Settlement modes.
const (
	SndUnsettled uint8 = 0
	SndSettled   uint8 = 1
	SndMixed     uint8 = 2
	RcvFirst     uint8 = 0
	RcvSecond    uint8 = 1
)

// Roles.
const (
	roleSender   = false
	roleReceiver = true
)

func (o *Attach) decode(d *decoder) {
	o.SndSettleMode = SndMixed
	n, end := d.list()
	if n < 3 && d.err == nil {
		d.fail("attach with %d fields, want at least 3", n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		switch i {
		case 0:
			o.Name = d.stringField()
		case 1:
			o.Handle = d.uint32Field(0)
		case 2:
			o.Role = d.boolField(false)
		case 3:
			v := d.uint32Field(uint32(SndMixed))
			if v > 2 {
				d.fail("snd-settle-mode %d", v)
			}
			o.SndSettleMode = uint8(v)
		case 4:
			v := d.uint32Field(uint32(RcvFirst))
			if v > 1 {
				d.fail("rcv-settle-mode %d", v)
			}
			o.RcvSettleMode = uint8(v)
		case 5:
			o.Source = decodeTerminus(d, true)
		case 6:
			o.Target = decodeTerminus(d, false)
		case 7:
			d.skip() // unsettled: no link recovery
		case 8:
			o.IncompleteUnsettled = d.boolField(false)
		case 9:
			o.InitialDeliveryCount = d.uint32Field(0)
		case 10:
			o.MaxMessageSize = d.uint64Field(0)
		case 11:
			o.OfferedCaps = d.symbolsField()
		case 12:
			o.DesiredCaps = d.symbolsField()
		case 13:
			o.Properties = d.mapField()
		default:
			d.skip()
		}
	}
	d.endList(end)
}

func (o *Attach) append(b []byte) []byte {
	b = appendDescriptor(b, descAttach)
	b, c := startList(b)
	b = appendString(c.field(b), o.Name)
	b = appendUint(c.field(b), o.Handle)
	b = appendBool(c.field(b), o.Role)
	b = appendUbyte(c.field(b), o.SndSettleMode)
	b = appendUbyte(c.field(b), o.RcvSettleMode)
	b = appendTerminus(c.field(b), o.Source, true)
	b = appendTerminus(c.field(b), o.Target, false)
	c.null()     // unsettled
	c.null()     // incomplete-unsettled
	if !o.Role { // the broker sends: initial-delivery-count is due
		b = appendUint(c.field(b), o.InitialDeliveryCount)
	} else {
		c.null()
	}
	if o.MaxMessageSize > 0 {
		b = appendUlong(c.field(b), o.MaxMessageSize)
	} else {
		c.null()
	}
	if len(o.OfferedCaps) > 0 {
		b = appendSymbols(c.field(b), o.OfferedCaps)
	}
	return c.end(b)
}

// Flow is the flow performative.
type Flow struct {
	NextIncomingID    uint32
	HasNextIncomingID bool
	IncomingWindow    uint32
	NextOutgoingID    uint32
	OutgoingWindow    uint32
	Handle            uint32
	HasHandle         bool
	DeliveryCount     uint32
	HasDeliveryCount  bool
	LinkCredit        uint32
	HasLinkCredit     bool
	Available         uint32
	HasAvailable      bool
	Drain             bool
	Echo              bool
}

func (o *Flow) decode(d *decoder) {
	n, end := d.list()
	if n < 4 && d.err == nil {
		d.fail("flow with %d fields, want at least 4", n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		switch i {
		case 0:
			o.NextIncomingID, o.HasNextIncomingID = d.optUint32()
		case 1:
			o.IncomingWindow = d.uint32Field(0)
		case 2:
			o.NextOutgoingID = d.uint32Field(0)
		case 3:
			o.OutgoingWindow = d.uint32Field(0)
		case 4:
			o.Handle, o.HasHandle = d.optUint32()
		case 5:
			o.DeliveryCount, o.HasDeliveryCount = d.optUint32()
		case 6:
			o.LinkCredit, o.HasLinkCredit = d.optUint32()
		case 7:
			o.Available, o.HasAvailable = d.optUint32()
		case 8:
			o.Drain = d.boolField(false)
		case 9:
			o.Echo = d.boolField(false)
		default:
			d.skip()
		}
	}
	d.endList(end)
}

func (o *Flow) append(b []byte) []byte {
	b = appendDescriptor(b, descFlow)
	b, c := startList(b)
	if o.HasNextIncomingID {
		b = appendUint(c.field(b), o.NextIncomingID)
	} else {
		c.null()
	}
	b = appendUint(c.field(b), o.IncomingWindow)
	b = appendUint(c.field(b), o.NextOutgoingID)
	b = appendUint(c.field(b), o.OutgoingWindow)
	if o.HasHandle {
		b = appendUint(c.field(b), o.Handle)
		b = appendUint(c.field(b), o.DeliveryCount)
		b = appendUint(c.field(b), o.LinkCredit)
		if o.HasAvailable {
			b = appendUint(c.field(b), o.Available)
		} else {
			c.null()
		}
		if o.Drain {
			b = appendBool(c.field(b), true)
		} else {
			c.null()
		}
		if o.Echo {
			b = appendBool(c.field(b), true)
		}
	}
	return c.end(b)
}

// DeliveryState is a delivery state or outcome: one of the descriptor
// codes descReceived ... descModified, descDeclared or
// descTransactionalState; 0 when absent.
type DeliveryState struct {
	Kind              uint64
	Error             *Error // rejected
	DeliveryFailed    bool   // modified
	UndeliverableHere bool   // modified
	TxnID             []byte // declared, transactional-state
	Outcome           *DeliveryState
}

func decodeDeliveryState(d *decoder, st *DeliveryState, depth int) {
	*st = DeliveryState{}
	if d.null() {
		return
	}
	code, known := d.descriptor()
	if d.err != nil {
		return
	}
	if !known {
		d.fail("unknown delivery state descriptor")
		return
	}
	st.Kind = code
	switch code {
	case descReceived, descAccepted, descReleased:
		d.skip()
		return
	case descRejected:
		n, end := d.list()
		for i := 0; i < n && d.err == nil; i++ {
			if i == 0 {
				st.Error = decodeError(d)
			} else {
				d.skip()
			}
		}
		d.endList(end)
	case descModified:
		n, end := d.list()
		for i := 0; i < n && d.err == nil; i++ {
			switch i {
			case 0:
				st.DeliveryFailed = d.boolField(false)
			case 1:
				st.UndeliverableHere = d.boolField(false)
			default:
				d.skip()
			}
		}
		d.endList(end)
	case descDeclared, descTransactionalState:
		n, end := d.list()
		for i := 0; i < n && d.err == nil; i++ {
			switch {
			case i == 0:
				st.TxnID = d.binaryField()
			case i == 1 && code == descTransactionalState:
				if depth > 0 {
					d.fail("nested transactional state")
					return
				}
				if !d.null() {
					st.Outcome = &DeliveryState{}
					decodeDeliveryState(d, st.Outcome, depth+1)
				}
			default:
				d.skip()
			}
		}
		d.endList(end)
	default:
		d.fail("unexpected delivery state 0x%x", code)
	}
}

func appendDeliveryState(b []byte, st *DeliveryState) []byte {
	if st == nil || st.Kind == 0 {
		return appendNull(b)
	}
	b = appendDescriptor(b, st.Kind)
	switch st.Kind {
	case descRejected:
		b, c := startList(b)
		if st.Error != nil {
			b = appendError(c.field(b), st.Error)
		}
		return c.end(b)
	case descModified:
		b, c := startList(b)
		b = appendBool(c.field(b), st.DeliveryFailed)
		b = appendBool(c.field(b), st.UndeliverableHere)
		return c.end(b)
	case descDeclared, descTransactionalState:
		b, c := startList(b)
		b = appendBinary(c.field(b), st.TxnID)
		if st.Outcome != nil {
			b = appendDeliveryState(c.field(b), st.Outcome)
		}
		return c.end(b)
	}
	return append(b, codeList0)
}

// Transfer is the transfer performative; its payload follows in the
// frame.
type Transfer struct {
	Handle           uint32
	DeliveryID       uint32
	HasDeliveryID    bool
	DeliveryTag      []byte // aliases the frame buffer
	HasDeliveryTag   bool
	MessageFormat    uint32
	Settled          bool
	HasSettled       bool
	More             bool
	RcvSettleMode    uint8
	HasRcvSettleMode bool
	State            DeliveryState
	Resume           bool
	Aborted          bool
	Batchable        bool
}

func (o *Transfer) decode(d *decoder) {
	*o = Transfer{}
	n, end := d.list()
	if n < 1 && d.err == nil {
		d.fail("transfer without a handle")
	}
	for i := 0; i < n && d.err == nil; i++ {
		switch i {
		case 0:
			o.Handle = d.uint32Field(0)
		case 1:
			o.DeliveryID, o.HasDeliveryID = d.optUint32()
		case 2:
			if !d.null() {
				o.DeliveryTag, o.HasDeliveryTag = d.binaryField(), true
				if len(o.DeliveryTag) > 32 {
					d.fail("delivery-tag of %d bytes (at most 32)", len(o.DeliveryTag))
				}
			}
		case 3:
			o.MessageFormat = d.uint32Field(0)
		case 4:
			o.Settled, o.HasSettled = d.optBool()
		case 5:
			o.More = d.boolField(false)
		case 6:
			v, ok := d.optUint32()
			if ok && v > 1 {
				d.fail("rcv-settle-mode %d", v)
			}
			o.RcvSettleMode, o.HasRcvSettleMode = uint8(v), ok
		case 7:
			decodeDeliveryState(d, &o.State, 0)
		case 8:
			o.Resume = d.boolField(false)
		case 9:
			o.Aborted = d.boolField(false)
		case 10:
			o.Batchable = d.boolField(false)
		default:
			d.skip()
		}
	}
	d.endList(end)
}

func (o *Transfer) append(b []byte) []byte {
	b = appendDescriptor(b, descTransfer)
	b, c := startList(b)
	b = appendUint(c.field(b), o.Handle)
	if o.HasDeliveryID {
		b = appendUint(c.field(b), o.DeliveryID)
		b = appendBinary(c.field(b), o.DeliveryTag)
		b = appendUint(c.field(b), o.MessageFormat)
		b = appendBool(c.field(b), o.Settled)
	} else {
		c.null()
		c.null()
		c.null()
		c.null()
	}
	if o.More {
		b = appendBool(c.field(b), true)
	}
	return c.end(b)
}

// Disposition is the disposition performative.
type Disposition struct {
	Role    bool
	First   uint32
	Last    uint32
	HasLast bool
	Settled bool
	State   DeliveryState
}

func (o *Disposition) decode(d *decoder) {
	*o = Disposition{}
	n, end := d.list()
	if n < 2 && d.err == nil {
		d.fail("disposition with %d fields, want at least 2", n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		switch i {
		case 0:
			o.Role = d.boolField(false)
		case 1:
			o.First = d.uint32Field(0)
		case 2:
			o.Last, o.HasLast = d.optUint32()
		case 3:
			o.Settled = d.boolField(false)
		case 4:
			decodeDeliveryState(d, &o.State, 0)
		default:
			d.skip()
		}
	}
	d.endList(end)
}

func (o *Disposition) append(b []byte) []byte {
	b = appendDescriptor(b, descDisposition)
	b, c := startList(b)
	b = appendBool(c.field(b), o.Role)
	b = appendUint(c.field(b), o.First)
	if o.HasLast && o.Last != o.First {
		b = appendUint(c.field(b), o.Last)
	} else {
		c.null()
	}
	b = appendBool(c.field(b), o.Settled)
	if o.State.Kind != 0 {
		b = appendDeliveryState(c.field(b), &o.State)
	}
	return c.end(b)
}

// Detach is the detach performative.
type Detach struct {
	Handle uint32
	Closed bool
	Error  *Error
}

func (o *Detach) decode(d *decoder) {
	n, end := d.list()
	if n < 1 && d.err == nil {
		d.fail("detach without a handle")
	}
	for i := 0; i < n && d.err == nil; i++ {
		switch i {
		case 0:
			o.Handle = d.uint32Field(0)
		case 1:
			o.Closed = d.boolField(false)
		case 2:
			o.Error = decodeError(d)
		default:
			d.skip()
		}
	}
	d.endList(end)
}

func (o *Detach) append(b []byte) []byte {
	b = appendDescriptor(b, descDetach)
	b, c := startList(b)
	b = appendUint(c.field(b), o.Handle)
	b = appendBool(c.field(b), o.Closed)
	if o.Error != nil {
		b = appendError(c.field(b), o.Error)
	}
	return c.end(b)
}

// decodeErrorOnly reads end and close: a list whose only field is an
// error.
func decodeErrorOnly(d *decoder) *Error {
	n, end := d.list()
	var e *Error
	for i := 0; i < n && d.err == nil; i++ {
		if i == 0 {
			e = decodeError(d)
		} else {
			d.skip()
		}
	}
	d.endList(end)
	return e
}

func appendErrorOnly(b []byte, desc uint64, e *Error) []byte {
	b = appendDescriptor(b, desc)
	b, c := startList(b)
	if e != nil {
		b = appendError(c.field(b), e)
	}
	return c.end(b)
}

// SASL outcome codes.
const (
	saslOK      uint8 = 0
	saslAuth    uint8 = 1
	saslSys     uint8 = 2
	saslSysPerm uint8 = 3
)

// SASLInit is the sasl-init frame.
type SASLInit struct {
	Mechanism       Symbol
	InitialResponse []byte
	Hostname        string
}

func (o *SASLInit) decode(d *decoder) {
	n, end := d.list()
	if n < 1 && d.err == nil {
		d.fail("sasl-init without a mechanism")
	}
	for i := 0; i < n && d.err == nil; i++ {
		switch i {
		case 0:
			o.Mechanism = d.symbolField()
		case 1:
			o.InitialResponse = d.binaryField()
		case 2:
			o.Hostname = d.stringField()
		default:
			d.skip()
		}
	}
	d.endList(end)
}

func appendSASLMechanisms(b []byte, mechs []Symbol) []byte {
	b = appendDescriptor(b, descSASLMechanisms)
	b, c := startList(b)
	// sasl-server-mechanisms is mandatory and multiple: always an array.
	b = c.field(b)
	if len(mechs) == 0 {
		b = append(b, codeArray8, 1, 0)
	} else {
		b = appendSymbols(b, mechs)
	}
	return c.end(b)
}

func appendSASLOutcome(b []byte, code uint8) []byte {
	b = appendDescriptor(b, descSASLOutcome)
	b, c := startList(b)
	b = appendUbyte(c.field(b), code)
	return c.end(b)
}
