package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/synchub/synchub/hub/dashboard"
)

const adminUsage = `Usage:
  synchub admin hash-password    read a password (prompted twice on a terminal, else one
                                 line of standard input) and print its bcrypt hash for
                                 dashboard.users[].password_hash in hub.yaml
`

// runAdmin runs the admin subcommands.
func runAdmin(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, adminUsage)
		return usageError{errors.New("missing subcommand")}
	}
	switch args[0] {
	case "hash-password":
		fs := flag.NewFlagSet("admin hash-password", flag.ContinueOnError)
		fs.SetOutput(stderr)
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usageError{fmt.Errorf("hash-password takes no arguments (got %q): it reads the password from standard input so that it stays out of the shell history", fs.Arg(0))}
		}
		pw, err := readPassword(stdin, stderr)
		if err != nil {
			return err
		}
		h, err := dashboard.HashPassword(pw)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, h)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, adminUsage)
		return nil
	}
	fmt.Fprint(stderr, adminUsage)
	return usageError{fmt.Errorf("unknown subcommand %q", args[0])}
}

// readPassword prompts twice without echo when stdin is the process's terminal, and
// otherwise reads one line.
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && isTerminal(f) {
		fmt.Fprint(stderr, "Password: ")
		a, err := readNoEcho(f)
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stderr, "Again: ")
		b, err := readNoEcho(f)
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if a != b {
			return "", errors.New("the two passwords differ; run the command again")
		}
		return a, nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("read the password from standard input: %w (pipe it in, e.g. printf '%%s\\n' \"$PW\" | synchub admin hash-password)", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}
