package conflict

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

// Conflict is everything known about one conflicting change.
type Conflict struct {
	Kind  Kind
	Edge  string
	Table *cdc.Table
	// Op is the edge's operation.
	Op cdc.Op
	// Key holds the row's key columns.
	Key cdc.Row
	// Base is the row as the edge last pulled it (nil for an insert).
	Base cdc.Row
	// Client is the edge's new row (nil for a delete).
	Client cdc.Row
	// Server is the central database's current row (nil when there is none).
	Server cdc.Row
	// Latest is the change log's entry for the row.
	Latest Latest
	// ClientTime is the edge's write time on the hub's clock (see ClientTime).
	// The zero time means unknown.
	ClientTime time.Time
}

// Decision is how a conflict is resolved.
type Decision struct {
	// Outcome is one of syncproto.OutcomeClientWon, OutcomeServerWon, OutcomeMerged or
	// OutcomeManual.
	Outcome string
	// Row is the row to write for OutcomeMerged; nil there means the row is deleted.
	// It is ignored for the other outcomes: client_won writes the edge's change,
	// server_won and manual write nothing.
	Row cdc.Row
}

// Resolver decides conflicts for the tables whose policy is "custom:<name>".
// Resolve may be called concurrently for different rows; it must not keep c's rows
// past the call. An error rejects the change with the error's text.
type Resolver interface {
	Resolve(ctx context.Context, c Conflict) (Decision, error)
}

// ResolverFunc adapts a function to a Resolver.
type ResolverFunc func(ctx context.Context, c Conflict) (Decision, error)

// Resolve calls f.
func (f ResolverFunc) Resolve(ctx context.Context, c Conflict) (Decision, error) { return f(ctx, c) }

// Resolve decides c by the table's policy in r.
func (r Rules) Resolve(ctx context.Context, c Conflict) (Decision, TablePolicy, error) {
	p := r.For(c.Table.Name)
	d, err := resolve(ctx, r, p, c)
	if err != nil {
		return Decision{}, p, err
	}
	if err := checkDecision(d); err != nil {
		return Decision{}, p, fmt.Errorf("conflict policy %s of %s: %w", p.Policy, c.Table.Name, err)
	}
	return d, p, nil
}

func resolve(ctx context.Context, r Rules, p TablePolicy, c Conflict) (Decision, error) {
	switch p.Policy {
	case ServerWins:
		return Decision{Outcome: syncproto.OutcomeServerWon}, nil
	case ClientWins:
		return Decision{Outcome: syncproto.OutcomeClientWon}, nil
	case Manual:
		return Decision{Outcome: syncproto.OutcomeManual}, nil
	case LWW:
		return lastWriterWins(c), nil
	case Merge:
		return ThreeWayMerge(c, p.Tiebreak), nil
	}
	name, ok := strings.CutPrefix(string(p.Policy), CustomPrefix)
	if !ok {
		return Decision{}, fmt.Errorf("table %s: unknown conflict policy %q", c.Table.Name, p.Policy)
	}
	res := r.Resolvers[name]
	if res == nil {
		return Decision{}, fmt.Errorf("table %s: conflict policy %q names no registered resolver", c.Table.Name, p.Policy)
	}
	return res.Resolve(ctx, c)
}

func checkDecision(d Decision) error {
	switch d.Outcome {
	case syncproto.OutcomeClientWon, syncproto.OutcomeServerWon, syncproto.OutcomeManual, syncproto.OutcomeMerged:
		return nil
	}
	return fmt.Errorf("decision outcome %q is not client_won, server_won, merged or manual", d.Outcome)
}

// lastWriterWins lets the later write win; a tie, or an unknown edge time, goes to
// the server. An unknown server commit time counts as older than any edge write.
func lastWriterWins(c Conflict) Decision {
	if !c.ClientTime.IsZero() && c.ClientTime.After(c.Latest.CommitTime) {
		return Decision{Outcome: syncproto.OutcomeClientWon}
	}
	return Decision{Outcome: syncproto.OutcomeServerWon}
}
