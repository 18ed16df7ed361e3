package e2e_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/phivault/phivault/internal/keyringtest"
	"github.com/phivault/phivault/keyring"
)

// TestKeyrings runs the real binary with its keys in a KMS and in an HSM:
// init, write, restart (so every key is unwrapped through the backend
// again), read back.
func TestKeyrings(t *testing.T) {
	requireE2E(t)
	t.Run("KMS", func(t *testing.T) {
		env, newKey := localKMS(t)
		roundTrip(t, newVault(t, env(newKey())...))
	})
	t.Run("PKCS11", func(t *testing.T) {
		roundTrip(t, newVault(t, softHSMEnv(t)...))
	})
}

// roundTrip creates a patient, restarts the server and reads it back.
func roundTrip(t *testing.T, v *vault) {
	t.Helper()
	if _, err := os.Stat(v.dir + "/keyring.age"); err == nil {
		t.Fatal("init made a key file although the keys live elsewhere")
	}
	v.start()
	id := createPatient(t, v)
	v.stop()
	v.start()
	readPatient(t, v, id)
}

// softHSMEnv sets up a SoftHSM2 token for t and returns the environment
// that points phivault at it. It skips t only when SoftHSM2 is not
// installed; a token that cannot be set up fails t.
func softHSMEnv(t *testing.T) []string {
	t.Helper()
	dir, err := keyringtest.SetUpSoftHSM()
	if dir != "" {
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	if errors.Is(err, keyringtest.ErrNoSoftHSM) {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	return []string{
		"PHIVAULT_KEYRING=pkcs11",
		"PHIVAULT_PKCS11_MODULE=" + keyringtest.SoftHSMModule,
		"PHIVAULT_PKCS11_TOKEN=" + keyringtest.SoftHSMToken,
		"PHIVAULT_PKCS11_PIN=" + keyringtest.SoftHSMPIN,
		"SOFTHSM2_CONF=" + os.Getenv("SOFTHSM2_CONF"),
	}
}

// localKMS starts a local-kms for t and returns a function that gives the
// environment pointing phivault at one of its keys, and a function that
// creates a key there and returns its ARN.
func localKMS(t *testing.T) (env func(keyARN string) []string, newKey func() string) {
	t.Helper()
	srv := keyringtest.StartLocalKMS(t)
	creds := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: "AKIDE2E", SecretAccessKey: "e2e-secret"}, nil
	})
	client := keyring.NewKMSClient(srv.Endpoint, keyringtest.KMSRegion, creds)
	env = func(keyARN string) []string {
		return []string{
			"PHIVAULT_KEYRING=kms",
			"PHIVAULT_KMS_KEY_ID=" + keyARN,
			"PHIVAULT_KMS_ENDPOINT=" + srv.Endpoint,
			"PHIVAULT_KMS_REGION=" + keyringtest.KMSRegion,
			"AWS_ACCESS_KEY_ID=AKIDE2E",
			"AWS_SECRET_ACCESS_KEY=e2e-secret",
		}
	}
	newKey = func() string {
		t.Helper()
		out, err := client.CreateKey(context.Background(), &kms.CreateKeyInput{})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.KeyMetadata.Arn)
	}
	return env, newKey
}
