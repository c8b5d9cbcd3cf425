package main

import (
	"testing"

	"github.com/tandemmq/tandem/internal/testenv"
)

// TestMain removes the tandem binary testenv.BuildTandem built (25 MB in
// the temporary directory otherwise).
func TestMain(m *testing.M) { testenv.Main(m) }
