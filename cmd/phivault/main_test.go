package main

import (
	"os"
	"testing"
)

// testWorkFactor is the scrypt work factor of the key files the tests
// make, as in keyring's tests: fast, where production uses
// keyring.DefaultWorkFactor (see keyFileOptions).
const testWorkFactor = 10

func TestMain(m *testing.M) {
	keyFileOptions.WorkFactor = testWorkFactor
	os.Exit(m.Run())
}
