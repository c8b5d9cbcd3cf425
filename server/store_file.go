package server

import (
	"errors"

	"github.com/tandemmq/tandem/config"
)

// ErrNoFileJournal is returned until the file journal is available.
var ErrNoFileJournal = errors.New("server: the file journal is not available in this build; set persistence-enabled=false or use a database store")

func openFileStore(cfg *config.Config, so StoreOptions) (*Store, error) {
	return nil, ErrNoFileJournal
}
