package jdbcstore

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Default table names, as Artemis names them in <database-store>.
// PostgreSQL folds unquoted names to lower case, and so do we.
const (
	DefaultMessageTable     = "MESSAGES"
	DefaultBindingsTable    = "BINDINGS"
	DefaultNodeManagerTable = "NODE_MANAGER_STORE"
	// MetaTable holds one row per Tandem table: its schema version and the
	// high-water marks that deleted rows no longer show.
	MetaTable = "tandem_schema"
)

// tableName validates a configured table name and returns its folded form.
// Names are plain SQL identifiers (letters, digits, underscores, not
// starting with a digit, at most 48 bytes so derived names fit in 63).
func tableName(name string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "" {
		return "", fmt.Errorf("jdbcstore: empty table name")
	}
	if len(n) > 48 {
		return "", fmt.Errorf("jdbcstore: table name %q: longer than 48 bytes", name)
	}
	for i, c := range n {
		ok := c == '_' || (c >= 'a' && c <= 'z') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			return "", fmt.Errorf("jdbcstore: table name %q: character %q at %d is not a letter, digit or underscore", name, c, i)
		}
	}
	return n, nil
}

// ident quotes a validated name for SQL.
func ident(name string) string { return pgx.Identifier{name}.Sanitize() }
