// Command synchub is the single synchub binary: `synchub hub`, `synchub edge`,
// `synchub demo` and `synchub version`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `synchub — CDC-driven sync hub for offline-first applications

Usage:
  synchub hub   --config hub.yaml      run the hub (ingest + sync API + /metrics)
  synchub edge  --hub URL --db edge.db  run an edge agent that keeps a local SQLite copy
  synchub demo  [--duration 1m]        run hub + throwaway PostgreSQL + two edges
  synchub admin hash-password          print a bcrypt hash for a dashboard user
  synchub keys  create|list|revoke     manage edge and admin API keys
  synchub version                      print the version

Run "synchub <command> -h" for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "hub":
		err = runHub(ctx, args[1:], stderr)
	case "edge":
		err = runEdge(ctx, args[1:], stdout, stderr)
	case "demo":
		err = runDemo(ctx, args[1:], stdout, stderr)
	case "admin":
		err = runAdmin(args[1:], os.Stdin, stdout, stderr)
	case "keys":
		err = runKeys(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "synchub: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "synchub %s: %v\n", args[0], err)
			return 2
		}
		fmt.Fprintf(stderr, "synchub %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// usageError marks a mistake in the command line.
type usageError struct{ error }

func versionString() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		return "synchub " + v + " " + info.GoVersion
	}
	return "synchub " + v
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Errorf("log level %q: use debug, info, warn or error", level)}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}
