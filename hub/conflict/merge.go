package conflict

import (
	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

// ThreeWayMerge merges the edge's row and the server's row field by field against the
// edge's base image. A field equal on both sides, or changed on one side only, takes
// that value; a field changed on both sides to different values is an overlap, decided
// by tiebreak: the server's or the client's value, or, for TiebreakManual, the whole
// conflict goes to the manual queue. A column the base image lacks (an insert, or a
// column added since) counts as changed on a side whose value is present. Columns the
// edge did not send keep the server's value.
//
// When either side deleted the row there are no fields to merge: the tiebreak decides
// the whole conflict (server: the server's state stays; client: the edge's change is
// written; manual: queued).
func ThreeWayMerge(c Conflict, tiebreak Tiebreak) Decision {
	if c.Client == nil || c.Server == nil {
		return wholeTiebreak(tiebreak)
	}
	merged := make(cdc.Row, 0, len(c.Server))
	for _, col := range c.Table.Columns {
		sv, hasS := c.Server.Get(col.Name)
		cv, hasC := c.Client.Get(col.Name)
		switch {
		case !hasC:
			if hasS {
				merged = append(merged, cdc.Field{Name: col.Name, Value: sv})
			}
			continue
		case !hasS:
			merged = append(merged, cdc.Field{Name: col.Name, Value: cv})
			continue
		}
		v := sv
		if !cv.Equal(sv) {
			bv, hasB := c.Base.Get(col.Name)
			clientChanged := !hasB || !cv.Equal(bv)
			serverChanged := !hasB || !sv.Equal(bv)
			switch {
			case clientChanged && !serverChanged:
				v = cv
			case clientChanged && serverChanged:
				switch tiebreak {
				case TiebreakClient:
					v = cv
				case TiebreakManual:
					return Decision{Outcome: syncproto.OutcomeManual}
				}
			}
		}
		merged = append(merged, cdc.Field{Name: col.Name, Value: v})
	}
	return Decision{Outcome: syncproto.OutcomeMerged, Row: merged}
}

func wholeTiebreak(t Tiebreak) Decision {
	switch t {
	case TiebreakClient:
		return Decision{Outcome: syncproto.OutcomeClientWon}
	case TiebreakManual:
		return Decision{Outcome: syncproto.OutcomeManual}
	}
	return Decision{Outcome: syncproto.OutcomeServerWon}
}
