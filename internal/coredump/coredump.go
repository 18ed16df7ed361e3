// Package coredump provides Disable, which keeps a process's memory (and so
// the key material in it) out of core files.
package coredump
