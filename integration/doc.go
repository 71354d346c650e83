// Package integration holds synchub's end-to-end tests: a real throwaway PostgreSQL, the
// hub (in process, or as a separate process for crash tests) and edge agents over real
// HTTP on 127.0.0.1. The tests start and stop their own servers; in CI (CI=true) a
// missing PostgreSQL fails them instead of skipping them.
package integration
