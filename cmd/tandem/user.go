package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"golang.org/x/sys/unix"

	"github.com/tandemmq/tandem/auth"
	"github.com/tandemmq/tandem/config"
)

func init() {
	register(command{
		name:    "user",
		summary: "user add|rm|ls|passwd: the broker's users file (passwords hashed), like artemis user",
		run:     func(args []string) int { return runUser(args, os.Stdin, os.Stdout, os.Stderr) },
	})
}

const userUsage = `usage: tandem user add|rm|ls|passwd [--user NAME] [--password PW] [--role R1,R2] [--config FILE | --file FILE]
(tandem user SUBCOMMAND -h lists its flags; docs/cli.md, docs/security.md)`

// runUser is `tandem user SUBCOMMAND`: it edits the users file of the
// instance (etc/users beside broker.xml, or broker.xml's <users-file>).
// A running broker reads the change within its
// security-invalidation-interval.
func runUser(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	sub, args, ok := subcommand(args, stderr, userUsage, "add", "rm", "ls", "passwd")
	if !ok {
		return exitCannot
	}
	fs := flag.NewFlagSet("user "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var name, password, roles, certSubject string
	for _, n := range []string{"user", "user-command-user"} { // Artemis's name too
		fs.StringVar(&name, n, "", "the user's name")
	}
	if sub == "add" || sub == "passwd" {
		for _, n := range []string{"password", "user-command-password"} {
			fs.StringVar(&password, n, "", "the password (default: asked on the terminal, or read as a line from stdin)")
		}
	}
	if sub == "add" {
		fs.StringVar(&roles, "role", "", "the user's roles, comma-separated (security-settings grant permissions to roles)")
		fs.StringVar(&certSubject, "cert-subject", "", "a user who logs in with a client certificate of this subject (e.g. \"CN=app,O=Example\") instead of a password")
	}
	cfgFile := fs.String("config", "", "broker.xml whose users file to edit (default ./etc/broker.xml)")
	file := fs.String("file", "", "the users file itself (instead of --config)")
	asJSON := false
	if sub == "ls" {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitCannot
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "tandem user %s: %v\n", sub, err)
		return exitCannot
	}
	if fs.NArg() > 0 {
		return fail(fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	path, err := usersFile(*cfgFile, *file)
	if err != nil {
		return fail(err)
	}
	if sub == "ls" {
		users, err := auth.ReadUsersFile(path)
		if errors.Is(err, os.ErrNotExist) {
			users, err = nil, nil
		}
		if err != nil {
			return fail(err)
		}
		return printUsers(stdout, users, asJSON)
	}
	if name == "" {
		return fail(errors.New("--user NAME is required"))
	}
	if err := auth.CheckName(name); err != nil {
		return fail(err)
	}
	var hash string
	if (sub == "add" && certSubject == "") || sub == "passwd" {
		if password == "" {
			if password, err = readPassword(stdin, stderr, name); err != nil {
				return fail(err)
			}
		}
		if password == "" {
			return fail(errors.New("the password is empty"))
		}
		if hash, err = auth.HashPassword(password); err != nil {
			return fail(err)
		}
	} else if password != "" {
		return fail(errors.New("--password and --cert-subject exclude each other"))
	}
	roleList := splitRoles(roles)
	for _, r := range roleList {
		if err := auth.CheckRole(r); err != nil {
			return fail(err)
		}
	}
	err = auth.UpdateUsersFile(path, func(users []auth.User) ([]auth.User, error) {
		i := slices.IndexFunc(users, func(u auth.User) bool { return u.Name == name })
		switch sub {
		case "add":
			if i >= 0 {
				return nil, fmt.Errorf("user %q exists (tandem user passwd changes its password; rm, then add, its roles)", name)
			}
			return append(users, auth.User{Name: name, Roles: roleList, Hash: hash, CertSubject: certSubject}), nil
		case "rm":
			if i < 0 {
				return nil, fmt.Errorf("no user %q in %s", name, path)
			}
			return slices.Delete(users, i, i+1), nil
		default: // passwd
			if i < 0 {
				return nil, fmt.Errorf("no user %q in %s", name, path)
			}
			users[i].Hash, users[i].CertSubject = hash, ""
			return users, nil
		}
	})
	if err != nil {
		return fail(err)
	}
	verb := map[string]string{"add": "added", "rm": "removed", "passwd": "password changed"}[sub]
	fmt.Fprintf(stdout, "user %q %s in %s (a running broker reads it within its security-invalidation-interval)\n", name, verb, path)
	return exitOK
}

// usersFile is --file, else the users file of --config (or of
// ./etc/broker.xml).
func usersFile(cfgFile, file string) (string, error) {
	if file != "" {
		if cfgFile != "" {
			return "", errors.New("--config and --file exclude each other")
		}
		return file, nil
	}
	if cfgFile == "" {
		if _, err := os.Stat("etc/broker.xml"); err != nil {
			return "", errors.New("no ./etc/broker.xml here: run in the instance directory, or give --config FILE or --file FILE")
		}
		cfgFile = "etc/broker.xml"
	}
	cfg, _, err := config.Load(cfgFile)
	if err != nil {
		return "", err
	}
	if cfg.Security.UsersFile == "" {
		return "", fmt.Errorf("%s names no users file", cfgFile)
	}
	return cfg.Security.UsersFile, nil
}

func splitRoles(s string) []string {
	var out []string
	for _, r := range strings.Split(s, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

func printUsers(w io.Writer, users []auth.User, asJSON bool) int {
	if asJSON {
		type view struct {
			Name        string   `json:"name"`
			Roles       []string `json:"roles"`
			Credential  string   `json:"credential"` // "password" or "certificate"
			CertSubject string   `json:"cert_subject,omitempty"`
		}
		out := []view{}
		for _, u := range users {
			v := view{Name: u.Name, Roles: u.Roles, Credential: "password", CertSubject: u.CertSubject}
			if v.Roles == nil {
				v.Roles = []string{}
			}
			if u.CertSubject != "" {
				v.Credential = "certificate"
			}
			out = append(out, v)
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintln(w, string(b))
		return exitOK
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tROLES\tCREDENTIAL")
	for _, u := range users {
		cred := "password"
		if u.CertSubject != "" {
			cred = "certificate " + u.CertSubject
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, strings.Join(u.Roles, ","), cred)
	}
	tw.Flush()
	return exitOK
}

// readPassword asks for a password on the terminal (twice, not echoed),
// or reads one line from stdin when it is not a terminal.
func readPassword(stdin io.Reader, stderr io.Writer, name string) (string, error) {
	f, isFile := stdin.(*os.File)
	if !isFile || !isTerminal(f) {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return "", errors.New("no --password, and no password line on stdin")
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	first, err := promptHidden(f, stderr, fmt.Sprintf("Password for %s: ", name))
	if err != nil {
		return "", err
	}
	again, err := promptHidden(f, stderr, "Again: ")
	if err != nil {
		return "", err
	}
	if first != again {
		return "", errors.New("the passwords differ")
	}
	return first, nil
}

// promptHidden reads a line from the terminal f with echo off.
func promptHidden(f *os.File, stderr io.Writer, prompt string) (string, error) {
	fmt.Fprint(stderr, prompt)
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", err
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return "", err
	}
	defer func() {
		unix.IoctlSetTermios(fd, unix.TCSETS, old)
		fmt.Fprintln(stderr)
	}()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && line == "" {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
