// Package ui renders synchub's web pages with templ. Components are pure functions of
// typed props; handlers elsewhere do the I/O and build the props. Static assets are
// embedded, so the pages never load anything from another origin. Regenerate the
// *_templ.go files with `go tool templ generate` (the version pinned in go.mod).
package ui

import "embed"

// Static holds the embedded stylesheet, served under /ui/static/.
//
//go:embed static
var Static embed.FS
