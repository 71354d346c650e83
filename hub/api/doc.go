// Package api is the hub's sync API, served with fiber v2.
//
// Edges pull the change log with GET /v1/changes and create their tables from
// GET /v1/schema. Page bodies are served exactly as the change log stored them (never
// re-encoded), gzip-compressed when the client accepts it. An empty page may be held as
// a long-poll until the next commit, the requested wait, or server shutdown.
//
//	GET /v1/changes?since=V[&cursor=C][&limit=N][&wait=D]   a page of the change log
//	GET /v1/schema                                          captured tables (ETag = version)
//	GET /v1/status                                          head, schema version, source state
//	GET /healthz                                            the process is alive
//	GET /readyz                                             the hub can serve (Deps.Ready)
//
// Every error is JSON (syncproto.Error) with a stable code; errors.go holds the one table
// that maps error kinds to HTTP status codes.
package api
