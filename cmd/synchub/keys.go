package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/auth"
)

const keysUsage = `Usage:
  synchub keys create --config hub.yaml --edge NAME [--claim NAME=VALUE]... [--signing] [--json]
  synchub keys create --config hub.yaml --admin NAME --role viewer|operator [--signing] [--json]
  synchub keys list   --config hub.yaml [--json]
  synchub keys revoke --config hub.yaml ID | --edge NAME

The key database is hub.yaml's auth.keys_path; creations and revocations are written to
the audit log (audit.path). A key and its signing secret are printed once, at creation.
`

// runKeys manages API keys: synchub keys create|list|revoke.
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return usageError{errors.New("name a subcommand: create, list or revoke")}
	}
	switch args[0] {
	case "create":
		return keysCreate(ctx, args[1:], stdout, stderr)
	case "list":
		return keysList(ctx, args[1:], stdout, stderr)
	case "revoke":
		return keysRevoke(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, keysUsage)
		return nil
	}
	fmt.Fprint(stderr, keysUsage)
	return usageError{fmt.Errorf("unknown subcommand %q: use create, list or revoke", args[0])}
}

// multiFlag collects a repeated flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// keysEnv is the key database and the audit log named by hub.yaml.
type keysEnv struct {
	keys  *auth.Keys
	audit *audit.SQLite
	actor string
}

func openKeysEnv(ctx context.Context, configPath string) (*keysEnv, error) {
	cfg, err := loadConfig(configPath, os.Environ())
	if err != nil {
		return nil, err
	}
	if cfg.Auth.KeysPath == "" || cfg.Audit.Path == "" {
		return nil, errors.New("auth.keys_path and audit.path must be set (see the configuration reference in README.md)")
	}
	for _, p := range []string{cfg.Auth.KeysPath, cfg.Audit.Path} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, fmt.Errorf("create data folder for %s: %w", p, err)
		}
	}
	keys, err := auth.OpenKeys(ctx, cfg.Auth.KeysPath)
	if err != nil {
		return nil, err
	}
	al, err := audit.OpenSQLite(ctx, cfg.Audit.Path, nil)
	if err != nil {
		keys.Close()
		return nil, fmt.Errorf("open audit log %s: %w", cfg.Audit.Path, err)
	}
	return &keysEnv{keys: keys, audit: al, actor: cliActor()}, nil
}

func (e *keysEnv) Close() {
	e.keys.Close()
	e.audit.Close()
}

// cliActor names the operator running the command in the audit log: the local user.
func cliActor() string {
	name := "cli"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	return audit.AdminActor(name)
}

func (e *keysEnv) record(ctx context.Context, action string, ki auth.KeyInfo) error {
	owner := "edge " + ki.Edge
	if ki.Admin != "" {
		owner = "admin " + ki.Admin + " (role " + ki.Role + ")"
	}
	detail := fmt.Sprintf("key %s for %s", ki.ID, owner)
	if len(ki.Claims) > 0 {
		if b, err := json.Marshal(ki.Claims); err == nil {
			detail += ", claims " + string(b)
		}
	}
	if ki.Signing {
		detail += ", requests signed"
	}
	err := e.audit.Append(ctx, audit.Event{Actor: e.actor, Action: action, Edge: ki.Edge, Key: ki.ID, Outcome: "ok", Detail: detail})
	if err != nil {
		return fmt.Errorf("write the audit event (the key change itself is stored): %w", err)
	}
	return nil
}

func keysCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "path to hub.yaml (auth.keys_path, audit.path)")
	edgeName := fs.String("edge", "", "the edge id the key authenticates")
	admin := fs.String("admin", "", "the admin the key authenticates (with --role)")
	role := fs.String("role", "", "admin role: viewer (read) or operator (also resolve, retry, discard)")
	signing := fs.Bool("signing", false, "also create a request-signing secret; requests with the key must then be signed")
	asJSON := fs.Bool("json", false, "print the key as JSON")
	var claims multiFlag
	fs.Var(&claims, "claim", "a claim for sync rules, NAME=VALUE (a,b for a list); repeatable")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	cl, err := auth.ParseClaims(claims)
	if err != nil {
		return usageError{err}
	}
	spec := auth.KeySpec{Edge: *edgeName, Admin: *admin, Role: *role, Claims: cl, Signing: *signing}
	if err := spec.Validate(); err != nil {
		return usageError{err}
	}
	env, err := openKeysEnv(ctx, *configPath)
	if err != nil {
		return err
	}
	defer env.Close()
	ck, err := env.keys.Create(ctx, spec)
	if err != nil {
		return err
	}
	if err := env.record(ctx, audit.ActionKeyCreate, ck.KeyInfo); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ck)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id:\t%s\n", ck.ID)
	if ck.Edge != "" {
		fmt.Fprintf(tw, "edge:\t%s\n", ck.Edge)
	} else {
		fmt.Fprintf(tw, "admin:\t%s (role %s)\n", ck.Admin, ck.Role)
	}
	if len(ck.Claims) > 0 {
		b, _ := json.Marshal(ck.Claims)
		fmt.Fprintf(tw, "claims:\t%s\n", b)
	}
	fmt.Fprintf(tw, "api key:\t%s\n", ck.Key)
	if ck.SigningSecret != "" {
		fmt.Fprintf(tw, "signing key id:\t%s\n", ck.ID)
		fmt.Fprintf(tw, "signing secret:\t%s\n", ck.SigningSecret)
	}
	tw.Flush()
	fmt.Fprintln(stdout, "\nThe key is shown only now: put it in the edge's (or admin tool's) configuration; the hub keeps only its hash.")
	return nil
}

func keysList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "path to hub.yaml (auth.keys_path)")
	asJSON := fs.Bool("json", false, "print the keys as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	env, err := openKeysEnv(ctx, *configPath)
	if err != nil {
		return err
	}
	defer env.Close()
	list, err := env.keys.List(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		if list == nil {
			list = []auth.KeyInfo{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tOWNER\tROLE\tSIGNED\tCREATED\tREVOKED\tCLAIMS")
	for _, k := range list {
		owner := "edge:" + k.Edge
		if k.Admin != "" {
			owner = "admin:" + k.Admin
		}
		revoked := "-"
		if !k.Revoked.IsZero() {
			revoked = k.Revoked.Format(time.RFC3339)
		}
		role := k.Role
		if role == "" {
			role = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\n", k.ID, owner, role, k.Signing, k.Created.Format(time.RFC3339), revoked, claimsText(k.Claims))
	}
	return tw.Flush()
}

func claimsText(c map[string]any) string {
	if len(c) == 0 {
		return "-"
	}
	names := make([]string, 0, len(c))
	for n := range c {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		b, _ := json.Marshal(c[n])
		parts[i] = n + "=" + string(b)
	}
	return strings.Join(parts, " ")
}

func keysRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys revoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "path to hub.yaml (auth.keys_path, audit.path)")
	edgeName := fs.String("edge", "", "revoke every valid key of this edge")
	// Accept the id before or after the flags.
	var id string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case id == "" && fs.NArg() == 1:
		id = fs.Arg(0)
	case fs.NArg() > 0:
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(fs.NArg()-1))}
	}
	if (id == "") == (*edgeName == "") {
		return usageError{errors.New("name what to revoke: a key ID (see `synchub keys list`) or --edge NAME, not both")}
	}
	env, err := openKeysEnv(ctx, *configPath)
	if err != nil {
		return err
	}
	defer env.Close()
	var revoked []auth.KeyInfo
	if id != "" {
		ki, err := env.keys.Revoke(ctx, id)
		if err != nil {
			return err
		}
		revoked = append(revoked, ki)
	} else {
		if revoked, err = env.keys.RevokeEdge(ctx, *edgeName); err != nil {
			return err
		}
		if len(revoked) == 0 {
			return fmt.Errorf("edge %s has no valid key to revoke (see `synchub keys list`)", *edgeName)
		}
	}
	for _, ki := range revoked {
		if err := env.record(ctx, audit.ActionKeyRevoke, ki); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s (%s)\n", ki.ID, ownerText(ki))
	}
	return nil
}

func ownerText(ki auth.KeyInfo) string {
	if ki.Admin != "" {
		return "admin " + ki.Admin
	}
	return "edge " + ki.Edge
}
