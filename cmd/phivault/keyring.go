package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/phivault/phivault"
	"github.com/phivault/phivault/keyring"
)

// Keyring kinds for -keyring.
const (
	keyringFile   = "file"
	keyringKMS    = "kms"
	keyringPKCS11 = "pkcs11"
)

// KeyringConfig selects where the key-encryption keys live. Secrets (the
// passphrase, KMS credentials, the HSM PIN) come from the environment or
// files only, never from flags.
type KeyringConfig struct {
	Kind         string // file (default), kms or pkcs11
	KMSKeyID     string // KMS key id, ARN or alias
	KMSEndpoint  string // KMS-compatible endpoint; empty means AWS
	KMSRegion    string
	PKCS11Module string // path of the PKCS#11 library
	PKCS11Token  string // token label
}

func (c *KeyringConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.Kind, "keyring", envOr("PHIVAULT_KEYRING", keyringFile), "where the key-encryption keys live: file, kms or pkcs11 (env PHIVAULT_KEYRING)")
	fs.StringVar(&c.KMSKeyID, "kms-key", os.Getenv("PHIVAULT_KMS_KEY_ID"), "KMS key id, ARN or alias (env PHIVAULT_KMS_KEY_ID; credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY[_FILE])")
	fs.StringVar(&c.KMSEndpoint, "kms-endpoint", os.Getenv("PHIVAULT_KMS_ENDPOINT"), "KMS-compatible endpoint URL; empty means AWS (env PHIVAULT_KMS_ENDPOINT)")
	fs.StringVar(&c.KMSRegion, "kms-region", envOr("PHIVAULT_KMS_REGION", "eu-west-2"), "KMS region (env PHIVAULT_KMS_REGION)")
	fs.StringVar(&c.PKCS11Module, "pkcs11-module", envOr("PHIVAULT_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so"), "PKCS#11 library (env PHIVAULT_PKCS11_MODULE; PIN from PHIVAULT_PKCS11_PIN[_FILE])")
	fs.StringVar(&c.PKCS11Token, "pkcs11-token", os.Getenv("PHIVAULT_PKCS11_TOKEN"), "PKCS#11 token label (env PHIVAULT_PKCS11_TOKEN)")
}

// closerFunc adapts a function to io.Closer.
type closerFunc func() error

func (f closerFunc) Close() error { return f() }

var noClose = closerFunc(func() error { return nil })

// keyFileOptions are the options the key file is created, opened and
// sealed again with: the defaults (scrypt work factor
// keyring.DefaultWorkFactor). The package's tests lower the work factor
// in TestMain, as keyring's own tests do: at 2^18 each sealing and
// opening takes seconds under the race detector, in every test that
// makes a vault. e2e.TestInit_keyFileWorkFactor checks the binary's.
var keyFileOptions = keyring.FileOptions{}

// openKeyring opens the configured keyring. passphrase is used by the file
// keyring only. The returned closer releases HSM sessions.
func openKeyring(d dataDir, c KeyringConfig, passphrase string) (phivault.Keyring, io.Closer, error) {
	switch c.Kind {
	case keyringFile, "":
		if passphrase == "" {
			return nil, nil, errorWithHint("no key-file passphrase", "set PHIVAULT_PASSPHRASE_FILE (or PHIVAULT_PASSPHRASE) or pass -passphrase-file")
		}
		keys, err := keyring.OpenReloading(d.keyFile(), []byte(passphrase), keyFileOptions)
		if errors.Is(err, keyring.ErrWrongPassphrase) {
			return nil, nil, errorWithHint("wrong passphrase for the key file", "check PHIVAULT_PASSPHRASE_FILE")
		} else if err != nil {
			return nil, nil, fmt.Errorf("open key file: %w", err)
		}
		return keys, noClose, nil
	case keyringKMS:
		if c.KMSKeyID == "" {
			return nil, nil, errorWithHint("no KMS key", "set PHIVAULT_KMS_KEY_ID")
		}
		id, err := secretFromEnv("AWS_ACCESS_KEY_ID")
		if err != nil {
			return nil, nil, err
		}
		secret, err := secretFromEnv("AWS_SECRET_ACCESS_KEY")
		if err != nil {
			return nil, nil, err
		}
		if id == "" || secret == "" {
			return nil, nil, errorWithHint("no KMS credentials", "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_SECRET_ACCESS_KEY_FILE)")
		}
		creds := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret, Source: "phivault environment"}, nil
		})
		client := keyring.NewKMSClient(c.KMSEndpoint, c.KMSRegion, creds)
		return keyring.NewKMS(client, c.KMSKeyID), noClose, nil
	case keyringPKCS11:
		pin, err := secretFromEnv("PHIVAULT_PKCS11_PIN")
		if err != nil {
			return nil, nil, err
		}
		if c.PKCS11Token == "" || pin == "" {
			return nil, nil, errorWithHint("no PKCS#11 token or PIN", "set PHIVAULT_PKCS11_TOKEN and PHIVAULT_PKCS11_PIN (or PHIVAULT_PKCS11_PIN_FILE)")
		}
		keys, err := keyring.OpenPKCS11(keyring.PKCS11Config{Module: c.PKCS11Module, TokenLabel: c.PKCS11Token, PIN: pin})
		if err != nil {
			return nil, nil, fmt.Errorf("open PKCS#11 keyring: %w", err)
		}
		return keys, keys, nil
	}
	return nil, nil, errorWithHint("unknown -keyring "+c.Kind, "use file, kms or pkcs11")
}
