//go:build !linux

package main

import "os"

// isTerminal is false off Linux: the password is read as a line of standard input.
func isTerminal(*os.File) bool { return false }

func readNoEcho(*os.File) (string, error) { return "", nil }
