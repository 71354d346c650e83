package auth

import (
	"errors"
	"fmt"
	"net/http"
)

// Reason names which authentication check failed. The set is fixed, so a Reason is a
// bounded metrics label and a stable audit detail.
type Reason string

// The reasons a request is refused.
const (
	ReasonMissingCredentials Reason = "missing_credentials"
	ReasonMalformed          Reason = "malformed_credentials"
	ReasonMethodDisabled     Reason = "method_disabled"
	ReasonUnknownKey         Reason = "unknown_key"
	ReasonRevokedKey         Reason = "revoked_key"
	ReasonInvalidToken       Reason = "invalid_token"
	ReasonBadAlgorithm       Reason = "bad_algorithm"
	ReasonExpired            Reason = "token_expired"
	ReasonNotYetValid        Reason = "token_not_yet_valid"
	ReasonWrongIssuer        Reason = "wrong_issuer"
	ReasonWrongAudience      Reason = "wrong_audience"
	ReasonUnknownKID         Reason = "unknown_kid"
	ReasonMissingEdgeClaim   Reason = "missing_edge_claim"
	ReasonMissingSignature   Reason = "missing_signature"
	ReasonBadSignature       Reason = "bad_signature"
	ReasonStaleTimestamp     Reason = "stale_timestamp"
	ReasonReplayed           Reason = "replayed_request"
	ReasonNotEdge            Reason = "not_an_edge_credential"
	ReasonNotAdmin           Reason = "not_an_admin_credential"
	ReasonWrongRole          Reason = "wrong_role"
	ReasonWrongEdge          Reason = "wrong_edge"
	ReasonUnavailable        Reason = "auth_unavailable"
)

// Failure is a refused request: its HTTP status (401, 403, or 503 when a credential
// could not be checked), which check failed, and a message for the client that says
// how to fix it. It never contains the credential.
type Failure struct {
	Status  int
	Reason  Reason
	Message string
	// Edge or Admin name the caller when the credential identified one before a later
	// check failed (for the audit log); empty otherwise.
	Edge, Admin string
	Err         error // the cause, for the hub's log; never sent
}

func (f *Failure) Error() string {
	if f.Err != nil {
		return fmt.Sprintf("%s: %s: %v", f.Reason, f.Message, f.Err)
	}
	return string(f.Reason) + ": " + f.Message
}

func (f *Failure) Unwrap() error { return f.Err }

// Code is the JSON error code of the answer: "unauthorized", "forbidden" or
// "auth_unavailable".
func (f *Failure) Code() string {
	switch f.Status {
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusServiceUnavailable:
		return "auth_unavailable"
	}
	return "unauthorized"
}

func unauthorized(r Reason, format string, args ...any) *Failure {
	return &Failure{Status: http.StatusUnauthorized, Reason: r, Message: fmt.Sprintf(format, args...)}
}

func forbidden(r Reason, format string, args ...any) *Failure {
	return &Failure{Status: http.StatusForbidden, Reason: r, Message: fmt.Sprintf(format, args...)}
}

// AsFailure returns err's *Failure, if it has one.
func AsFailure(err error) (*Failure, bool) {
	var f *Failure
	ok := errors.As(err, &f)
	return f, ok
}
