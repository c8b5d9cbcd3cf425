package auth

import (
	"errors"
	"fmt"

	"github.com/tandemmq/tandem/config"
)

// Permission is one of Artemis's security-setting permission types.
type Permission uint8

// Permissions, with what each guards (docs/security.md).
const (
	Send                  Permission = iota // send to an address
	Consume                                 // consume from a queue of an address
	CreateDurableQueue                      // create a durable queue (explicitly or by auto-create)
	DeleteDurableQueue                      // delete a durable queue
	CreateNonDurableQueue                   // create a non-durable or temporary queue (a topic subscription)
	DeleteNonDurableQueue                   // delete one
	CreateAddress                           // create an address (explicitly or by auto-create)
	DeleteAddress                           // delete an address
	Browse                                  // browse a queue's messages without consuming them
	Manage                                  // management operations that change or reveal something
	numPermissions
)

// String returns the permission's name as <permission type="..."> writes it.
func (p Permission) String() string {
	if int(p) < len(config.PermissionTypes) {
		return config.PermissionTypes[p]
	}
	return fmt.Sprintf("permission(%d)", uint8(p))
}

// ParsePermission reads a permission type name.
func ParsePermission(s string) (Permission, bool) {
	for i, n := range config.PermissionTypes {
		if n == s {
			return Permission(i), true
		}
	}
	return 0, false
}

// ErrDenied is wrapped by every DeniedError.
var ErrDenied = errors.New("permission denied")

// DeniedError says that a user lacks a permission on an address.
type DeniedError struct {
	User       string // "" for an anonymous client
	Permission Permission
	Address    string
	Why        string
}

func (e *DeniedError) Error() string {
	who := fmt.Sprintf("user %q", e.User)
	if e.User == "" {
		who = "an anonymous client"
	}
	return fmt.Sprintf("permission denied: %s may not %s on address %q (%s)", who, e.Permission, e.Address, e.Why)
}

// Unwrap returns ErrDenied.
func (e *DeniedError) Unwrap() error { return ErrDenied }

// ErrLogin is wrapped by every LoginError.
var ErrLogin = errors.New("authentication failed")

// LoginError says why a login failed; it never holds the password.
type LoginError struct {
	User   string
	Reason string
}

func (e *LoginError) Error() string {
	if e.User == "" {
		return "authentication failed: " + e.Reason
	}
	return fmt.Sprintf("authentication failed for user %q: %s", clip(e.User), e.Reason)
}

// Unwrap returns ErrLogin.
func (e *LoginError) Unwrap() error { return ErrLogin }

// clip shortens a client-chosen string for messages and logs.
func clip(s string) string {
	const n = 64
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "..."
}
