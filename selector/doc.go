// Package selector parses and evaluates message selectors (filters) in the
// SQL-92 subset ActiveMQ Artemis accepts: queue filters in <addresses>
// and consumer selectors (Tandem's CreateConsumer filter, AMQP's
// selector filter, STOMP's selector header).
//
// It owns the grammar and its three-valued evaluation, and nothing else:
// it never sees a broker type. A message is anything with a Value method
// (Values); names it does not know are NULL (unknown).
//
// # Grammar
//
//	expr       = or
//	or         = and { OR and }
//	and        = not { AND not }
//	not        = NOT not | predicate
//	predicate  = sum [ cmp sum
//	                 | [NOT] BETWEEN sum AND sum
//	                 | [NOT] LIKE string [ESCAPE string]
//	                 | [NOT] IN ( literal { , literal } )
//	                 | IS [NOT] NULL ]
//	cmp        = "=" | "<>" | "<" | "<=" | ">" | ">="
//	sum        = product { ("+" | "-") product }
//	product    = unary { ("*" | "/" | "%") unary }
//	unary      = ("+" | "-") unary | primary
//	primary    = literal | identifier | "(" expr ")"
//	literal    = 'string' ('' inside is a quote) | integer (decimal, 0x hex,
//	             leading-0 octal, optional L suffix) | decimal number with
//	             an optional exponent | TRUE | FALSE | NULL
//	identifier = letter, '_' or '$', then letters, digits, '_', '$', '.'
//
// Keywords are case-insensitive; identifiers are not. Values are NULL,
// booleans, 64-bit integers, 64-bit floats and strings. Comparing values
// of different kinds (a string with a number) is unknown, and so is any
// operation on NULL; a selector matches only when it evaluates to TRUE.
// Integers and floats compare and compute as numbers; integer division
// by zero is unknown.
//
// Limits: a selector is at most MaxLength bytes and nests at most
// MaxDepth levels; longer or deeper input is an error, never a crash.
package selector
