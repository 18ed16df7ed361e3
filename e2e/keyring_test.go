package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
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
		srv := keyringtest.StartLocalKMS(t)
		creds := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDE2E", SecretAccessKey: "e2e-secret"}, nil
		})
		client := keyring.NewKMSClient(srv.Endpoint, keyringtest.KMSRegion, creds)
		out, err := client.CreateKey(context.Background(), &kms.CreateKeyInput{})
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, newVault(t,
			"PHIVAULT_KEYRING=kms",
			"PHIVAULT_KMS_KEY_ID="+aws.ToString(out.KeyMetadata.Arn),
			"PHIVAULT_KMS_ENDPOINT="+srv.Endpoint,
			"PHIVAULT_KMS_REGION="+keyringtest.KMSRegion,
			"AWS_ACCESS_KEY_ID=AKIDE2E",
			"AWS_SECRET_ACCESS_KEY=e2e-secret"))
	})
	t.Run("PKCS11", func(t *testing.T) {
		dir, err := keyringtest.SetUpSoftHSM()
		if dir != "" {
			t.Cleanup(func() { os.RemoveAll(dir) })
		}
		if err != nil {
			t.Skip(err)
		}
		roundTrip(t, newVault(t,
			"PHIVAULT_KEYRING=pkcs11",
			"PHIVAULT_PKCS11_MODULE="+keyringtest.SoftHSMModule,
			"PHIVAULT_PKCS11_TOKEN="+keyringtest.SoftHSMToken,
			"PHIVAULT_PKCS11_PIN="+keyringtest.SoftHSMPIN,
			"SOFTHSM2_CONF="+os.Getenv("SOFTHSM2_CONF")))
	})
}

// roundTrip creates a patient, restarts the server and reads it back.
func roundTrip(t *testing.T, v *vault) {
	t.Helper()
	if _, err := os.Stat(v.dir + "/keyring.age"); err == nil {
		t.Fatal("init made a key file although the keys live elsewhere")
	}
	v.start()
	r := v.do(http.MethodPost, "/Patient", []byte(`{"resourceType":"Patient","name":[{"family":"Keyringtest"}]}`))
	if r.status != http.StatusCreated {
		t.Fatalf("create: HTTP %d: %s", r.status, r.body)
	}
	var created struct{ ID string }
	if err := json.Unmarshal(r.body, &created); err != nil {
		t.Fatal(err)
	}
	v.stop()
	v.start()
	r = v.do(http.MethodGet, "/Patient/"+created.ID, nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "Keyringtest") {
		t.Fatalf("read after restart: HTTP %d: %s", r.status, r.body)
	}
}
