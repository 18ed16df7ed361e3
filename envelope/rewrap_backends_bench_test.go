package envelope_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/internal/keyringtest"
	"github.com/phivault/phivault/keyring"
	"github.com/phivault/phivault/sqlite"
)

// BenchmarkRewrap_PKCS11 rewraps 20,000 DEKs after a rotation of the
// PKCS#11 keyring on SoftHSM2 (every key is an unwrap and a wrap inside the
// token). It reports keys/s.
//
//	go test ./envelope -run '^$' -bench Rewrap_PKCS11 -benchtime 1x
func BenchmarkRewrap_PKCS11(b *testing.B) {
	dir, err := keyringtest.SetUpSoftHSM()
	if dir != "" {
		defer os.RemoveAll(dir)
	}
	if errors.Is(err, keyringtest.ErrNoSoftHSM) {
		b.Skip(err)
	} else if err != nil {
		b.Fatal(err)
	}
	cfg := keyring.PKCS11Config{Module: keyringtest.SoftHSMModule, TokenLabel: keyringtest.SoftHSMToken, PIN: keyringtest.SoftHSMPIN}
	if _, err := keyring.GeneratePKCS11Key(cfg); err != nil {
		b.Fatal(err)
	}
	keys, err := keyring.OpenPKCS11(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer keys.Close()
	benchRewrap(b, 20_000, keys, keys, func() {
		if _, err := keys.Rotate(context.Background()); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkRewrap_KMS rewraps 5,000 DEKs from one local-kms key to another
// (a switch of KMS keys: every key is a Decrypt and an Encrypt call). It
// reports keys/s.
//
//	go test ./envelope -run '^$' -bench Rewrap_KMS -benchtime 1x
func BenchmarkRewrap_KMS(b *testing.B) {
	srv := keyringtest.StartLocalKMS(b)
	creds := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: "AKIDBENCH", SecretAccessKey: "bench-secret"}, nil
	})
	client := keyring.NewKMSClient(srv.Endpoint, keyringtest.KMSRegion, creds)
	var keyIDs []string
	for range b.N + 1 {
		out, err := client.CreateKey(context.Background(), &kms.CreateKeyInput{})
		if err != nil {
			b.Fatal(err)
		}
		keyIDs = append(keyIDs, aws.ToString(out.KeyMetadata.Arn))
	}
	next := 0
	var current phivault.Keyring = keyring.NewKMS(client, keyIDs[0])
	benchRewrap(b, 5_000, current, switchable{&current}, func() {
		next++
		current = keyring.NewKMS(client, keyIDs[next])
	})
}

// switchable is the keyring *k, read at each call.
type switchable struct{ k *phivault.Keyring }

func (s switchable) WrapKey(ctx context.Context, name string, dek []byte) (phivault.KeyID, []byte, error) {
	return (*s.k).WrapKey(ctx, name, dek)
}

func (s switchable) UnwrapKey(ctx context.Context, id phivault.KeyID, name string, wrapped []byte) ([]byte, error) {
	return (*s.k).UnwrapKey(ctx, id, name, wrapped)
}

// benchRewrap seeds a SQLite store with n DEKs wrapped by seed, then, per
// iteration, calls rotate (untimed) and rewraps every key with keys.
func benchRewrap(b *testing.B, n int, seed, keys phivault.Keyring, rotate func()) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "phivault.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	dek := make([]byte, envelope.KeySize)
	const seedBatch = 1000
	for lo := 0; lo < n; lo += seedBatch {
		err := db.Update(ctx, func(tx phivault.StoreTx) error {
			for i := lo; i < min(lo+seedBatch, n); i++ {
				dek[0], dek[1], dek[2] = byte(i), byte(i>>8), byte(i>>16)
				id := fmt.Sprintf("patient/%08d", i)
				kek, wrapped, err := seed.WrapKey(ctx, id, dek)
				if err != nil {
					return err
				}
				if _, err := tx.PutKey(ctx, &phivault.WrappedKey{ID: id, KEKID: kek, Wrapped: wrapped, Created: t0, Bound: true}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	total := 0
	for range b.N {
		b.StopTimer()
		rotate()
		b.StartTimer()
		done, err := envelope.Rewrap(ctx, db, keys, envelope.RewrapOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if done != n {
			b.Fatalf("rewrapped %d keys, want %d", done, n)
		}
		total += done
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "keys/s")
}
