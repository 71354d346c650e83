// Package ui renders synchub's admin dashboard with templ. Components are pure
// functions of typed props; hub/dashboard does the I/O, builds the props, and renders a
// whole page or, for an htmx request, the refreshing fragment. Static assets are
// embedded, so the pages never load anything from another origin. Regenerate the
// *_templ.go files with `go tool templ generate` (the version pinned in go.mod).
package ui

import "embed"

// Static holds the embedded stylesheet and htmx (htmx.org 2.0.11, dist/htmx.min.js),
// served under /ui/static/.
//
//go:embed static
var Static embed.FS
