package conflict

import (
	"fmt"
	"sort"
	"strings"
)

// Policy names how a table's conflicts are resolved.
type Policy string

// The built-in policies. A policy may also be CustomPrefix followed by the name of a
// Resolver in Rules.Resolvers.
const (
	LWW        Policy = "lww"
	ServerWins Policy = "server-wins"
	ClientWins Policy = "client-wins"
	Merge      Policy = "merge"
	Manual     Policy = "manual"
)

// CustomPrefix starts a policy that names a registered Resolver: "custom:<name>".
const CustomPrefix = "custom:"

// Tiebreak decides the fields a merge finds changed on both sides to different values.
type Tiebreak string

// The tiebreaks of the merge policy.
const (
	TiebreakServer Tiebreak = "server"
	TiebreakClient Tiebreak = "client"
	TiebreakManual Tiebreak = "manual"
)

// DefaultPolicy is the policy of a table with none configured.
const DefaultPolicy = LWW

// DefaultTiebreak is the merge tiebreak when none is configured.
const DefaultTiebreak = TiebreakServer

// TablePolicy is one table's conflict policy.
type TablePolicy struct {
	Policy Policy `json:"policy" yaml:"policy"`
	// Tiebreak is used by the merge policy only; empty means DefaultTiebreak.
	Tiebreak Tiebreak `json:"tiebreak,omitempty" yaml:"tiebreak,omitempty"`
}

// Rules are the conflict policies of all tables.
type Rules struct {
	// Default applies to tables not in Tables; an empty Policy means DefaultPolicy.
	Default TablePolicy
	// Tables maps a schema-qualified table name ("public.orders") to its policy.
	Tables map[string]TablePolicy
	// Resolvers holds the custom resolvers, by the name used in "custom:<name>".
	Resolvers map[string]Resolver
}

// For returns the policy of table, with defaults filled in.
func (r Rules) For(table string) TablePolicy {
	p, ok := r.Tables[table]
	if !ok {
		p = r.Default
	}
	if p.Policy == "" {
		p.Policy = r.Default.Policy
	}
	if p.Policy == "" {
		p.Policy = DefaultPolicy
	}
	if p.Tiebreak == "" {
		p.Tiebreak = r.Default.Tiebreak
	}
	if p.Tiebreak == "" {
		p.Tiebreak = DefaultTiebreak
	}
	return p
}

// allowedPolicies lists the accepted policy names for error messages.
const allowedPolicies = `lww, server-wins, client-wins, merge, manual or custom:<name>`

// Validate checks every policy and tiebreak and that each custom policy names a
// registered resolver. Errors name the table and the allowed values.
func (r Rules) Validate() error {
	if err := r.validateOne("default policy", r.Default); err != nil {
		return err
	}
	tables := make([]string, 0, len(r.Tables))
	for t := range r.Tables {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	for _, t := range tables {
		if t == "" {
			return fmt.Errorf("conflict policies: a table name is empty; use schema-qualified names such as public.orders")
		}
		if err := r.validateOne("table "+t, r.Tables[t]); err != nil {
			return err
		}
	}
	for name, res := range r.Resolvers {
		if res == nil {
			return fmt.Errorf("conflict resolvers: %q is nil; register a Resolver or remove the entry", name)
		}
	}
	return nil
}

func (r Rules) validateOne(what string, p TablePolicy) error {
	switch p.Policy {
	case "", LWW, ServerWins, ClientWins, Merge, Manual:
	default:
		name, ok := strings.CutPrefix(string(p.Policy), CustomPrefix)
		if !ok {
			return fmt.Errorf("conflict policy of %s: %q is not a policy; use %s", what, p.Policy, allowedPolicies)
		}
		if _, ok := r.Resolvers[name]; !ok || name == "" {
			return fmt.Errorf("conflict policy of %s: %q names no registered resolver; register one in Rules.Resolvers under %q or use %s",
				what, p.Policy, name, allowedPolicies)
		}
	}
	switch p.Tiebreak {
	case "", TiebreakServer, TiebreakClient, TiebreakManual:
	default:
		return fmt.Errorf("conflict tiebreak of %s: %q is not a tiebreak; use server, client or manual", what, p.Tiebreak)
	}
	return nil
}
