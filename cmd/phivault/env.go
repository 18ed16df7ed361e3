package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// envOr returns the environment variable name, or def when it is unset.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// secretFromEnv reads a secret from the environment variable name, or from
// the file named by name+"_FILE". Setting both is an error. Secrets never
// come from flags, which other users can read in the process list.
func secretFromEnv(name string) (string, error) {
	v, hasValue := os.LookupEnv(name)
	path, hasFile := os.LookupEnv(name + "_FILE")
	switch {
	case hasValue && hasFile:
		return "", fmt.Errorf("both %s and %s_FILE are set; set one", name, name)
	case hasFile:
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("read %s_FILE: %w", name, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return v, nil
}

// hintError is an error with a line telling the user what to do.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

func errorWithHint(msg, hint string) error {
	return &hintError{err: errors.New(msg), hint: hint}
}
