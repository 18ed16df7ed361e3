//go:build !linux

package coredump

// Disable does nothing on this system: phivault disables core dumps on
// Linux only.
func Disable() error { return nil }
