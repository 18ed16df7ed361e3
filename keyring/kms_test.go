package keyring_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/internal/keyringtest"
	"github.com/phivault/phivault/keyring"
)

// testKMSSecret is the secret key of testKMSCreds.
const testKMSSecret = "test-secret-access-key-not-a-real-one"

// testKMSCreds are the static credentials local-kms accepts (any will do).
var testKMSCreds = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
	return aws.Credentials{AccessKeyID: "AKIDPHIVAULTTEST", SecretAccessKey: testKMSSecret, Source: "test"}, nil
})

// MustKMSClient returns a client of the server at endpoint that retries
// like the default client but with short backoffs, so that outage tests
// stay fast.
func MustKMSClient(tb testing.TB, endpoint string) *kms.Client {
	tb.Helper()
	return keyring.NewKMSClient(endpoint, keyringtest.KMSRegion, testKMSCreds, func(o *kms.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxBackoff = 10 * time.Millisecond
		})
	})
}

// MustCreateKMSKey creates a symmetric encryption key and returns its ARN.
func MustCreateKMSKey(tb testing.TB, client *kms.Client) string {
	tb.Helper()
	out, err := client.CreateKey(context.Background(), &kms.CreateKeyInput{Description: aws.String("phivault test kek")})
	if err != nil {
		tb.Fatalf("CreateKey = %v", err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

// MustOpenKMS starts local-kms, creates a key and returns a keyring using it.
func MustOpenKMS(tb testing.TB) (*keyring.KMS, *kms.Client, *keyringtest.LocalKMS, string) {
	tb.Helper()
	srv := keyringtest.StartLocalKMS(tb)
	client := MustKMSClient(tb, srv.Endpoint)
	arn := MustCreateKMSKey(tb, client)
	return keyring.NewKMS(client, arn), client, srv, arn
}

func newDEK(tb testing.TB) []byte {
	tb.Helper()
	dek := make([]byte, 32)
	if _, err := rand.Read(dek); err != nil {
		tb.Fatal(err)
	}
	return dek
}

// checkNoKeyInError fails the test if err's text contains dek raw, in hex
// or in base64.
func checkNoKeyInError(tb testing.TB, err error, dek []byte) {
	tb.Helper()
	if err == nil {
		return
	}
	s := err.Error()
	if strings.Contains(s, string(dek)) || strings.Contains(strings.ToLower(s), hex.EncodeToString(dek)) ||
		strings.Contains(s, base64.StdEncoding.EncodeToString(dek)) || strings.Contains(s, base64.RawStdEncoding.EncodeToString(dek)) {
		tb.Errorf("error %q contains the DEK", s)
	}
}

func TestKMS_Conformance(t *testing.T) {
	srv := keyringtest.StartLocalKMS(t)
	client := MustKMSClient(t, srv.Endpoint)
	arn := MustCreateKMSKey(t, client)
	keyringtest.Run(t, func(t *testing.T) phivault.Keyring {
		return keyring.NewKMS(client, arn)
	})
	// phivault makes no KMS keys: every one accepts unbound wraps until
	// the keyring tags it.
	keyringtest.RunUnbound(t, keyringtest.UnboundBackend{
		Old: func(t *testing.T) envelope.UnboundRefuser {
			return keyring.NewKMS(client, MustCreateKMSKey(t, client))
		},
		WrapUnbound: func(t *testing.T, k envelope.UnboundRefuser, id phivault.KeyID, dek []byte) []byte {
			return mustWrapUnboundKMS(t, client, id, dek)
		},
		Reopen: func(t *testing.T, k envelope.UnboundRefuser) envelope.UnboundRefuser {
			return keyring.NewKMS(client, k.(*keyring.KMS).KeyID())
		},
	})
}

// mustWrapUnboundKMS encrypts dek under KMS key id ("kms:" + ARN) with the
// encryption context of an unbound wrap, as phivault did before binding.
func mustWrapUnboundKMS(tb testing.TB, client *kms.Client, id phivault.KeyID, dek []byte) []byte {
	tb.Helper()
	out, err := client.Encrypt(context.Background(), &kms.EncryptInput{
		KeyId:             aws.String(strings.TrimPrefix(string(id), keyring.KMSKeyIDPrefix)),
		Plaintext:         dek,
		EncryptionContext: map[string]string{"purpose": "phivault dek v1"},
	})
	if err != nil {
		tb.Fatalf("KMS Encrypt = %v", err)
	}
	return out.CiphertextBlob
}

func TestKMS_WrapKey(t *testing.T) {
	ctx := context.Background()
	k, client, _, arn := MustOpenKMS(t)
	t.Run("OK", func(t *testing.T) {
		dek := newDEK(t)
		id, wrapped, err := k.WrapKey(ctx, keyName, dek)
		if err != nil {
			t.Fatalf("WrapKey = %v", err)
		}
		if want := phivault.KeyID("kms:" + arn); id != want {
			t.Errorf("WrapKey id = %q, want %q", id, want)
		}
		// The wrapped key is a KMS ciphertext with our encryption context,
		// which names the key it is bound to.
		out, err := client.Decrypt(ctx, &kms.DecryptInput{
			CiphertextBlob:    wrapped,
			EncryptionContext: map[string]string{"purpose": "phivault dek v2", "key": keyName},
		})
		if err != nil {
			t.Fatalf("KMS Decrypt of the wrapped key = %v", err)
		}
		if !bytes.Equal(out.Plaintext, dek) {
			t.Error("KMS Decrypt of the wrapped key returned another key")
		}
	})
	t.Run("Alias", func(t *testing.T) {
		if _, err := client.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/phivault-test"), TargetKeyId: aws.String(arn)}); err != nil {
			t.Fatalf("CreateAlias = %v", err)
		}
		ak := keyring.NewKMS(client, "alias/phivault-test")
		dek := newDEK(t)
		id, wrapped, err := ak.WrapKey(ctx, keyName, dek)
		if err != nil {
			t.Fatalf("WrapKey = %v", err)
		}
		if want := phivault.KeyID("kms:" + arn); id != want {
			t.Errorf("WrapKey id = %q, want the key ARN %q", id, want)
		}
		if got, err := k.UnwrapKey(ctx, id, keyName, wrapped); err != nil || !bytes.Equal(got, dek) {
			t.Errorf("UnwrapKey = %v, want the DEK", err)
		}
	})
	t.Run("ErrNoSuchKey", func(t *testing.T) {
		dek := newDEK(t)
		bad := keyring.NewKMS(client, "arn:aws:kms:eu-west-2:111122223333:key/00000000-0000-0000-0000-000000000000")
		id, wrapped, err := bad.WrapKey(ctx, keyName, dek)
		if err == nil {
			t.Fatalf("WrapKey under a missing key = %q, %x, want an error", id, wrapped)
		}
		if errors.Is(err, keyring.ErrKMSUnavailable) {
			t.Errorf("WrapKey under a missing key = %v, want an error other than ErrKMSUnavailable", err)
		}
		checkNoKeyInError(t, err, dek)
	})
	t.Run("ErrDEKSize", func(t *testing.T) {
		for _, dek := range [][]byte{nil, make([]byte, 4097)} {
			if _, _, err := k.WrapKey(ctx, keyName, dek); err == nil {
				t.Errorf("WrapKey of %d bytes succeeded", len(dek))
			}
		}
	})
}

func TestKMS_UnwrapKey(t *testing.T) {
	ctx := context.Background()
	k, client, _, arn := MustOpenKMS(t)
	t.Run("ErrWrongContext", func(t *testing.T) {
		dek := newDEK(t)
		for _, ec := range []map[string]string{nil, {"purpose": "phivault dek v2"}, {"purpose": "phivault dek v1", "x": "y"},
			{"purpose": "phivault dek v1"}, {"purpose": "phivault dek v2", "key": "patient/other"}, {"purpose": "phivault dek v2", "key": keyName, "x": "y"}} {
			out, err := client.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(arn), Plaintext: dek, EncryptionContext: ec})
			if err != nil {
				t.Fatalf("KMS Encrypt = %v", err)
			}
			got, err := k.UnwrapKey(ctx, phivault.KeyID("kms:"+arn), keyName, out.CiphertextBlob)
			if !errors.Is(err, keyring.ErrUnwrap) {
				t.Errorf("UnwrapKey of a key wrapped with context %v = %x, %v, want ErrUnwrap", ec, got, err)
			}
			checkNoKeyInError(t, err, dek)
		}
		// And what the keyring wraps does not decrypt without its context.
		_, wrapped, err := k.WrapKey(ctx, keyName, dek)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: wrapped}); err == nil {
			t.Error("KMS Decrypt of a wrapped key without the encryption context succeeded")
		}
	})
	t.Run("Unbound", func(t *testing.T) {
		// A key wrapped before wraps were bound (context without a key
		// name) still unwraps, with name "", and only so.
		dek := newDEK(t)
		out, err := client.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(arn), Plaintext: dek, EncryptionContext: map[string]string{"purpose": "phivault dek v1"}})
		if err != nil {
			t.Fatalf("KMS Encrypt = %v", err)
		}
		id := phivault.KeyID("kms:" + arn)
		if got, err := k.UnwrapKey(ctx, id, "", out.CiphertextBlob); err != nil || !bytes.Equal(got, dek) {
			t.Errorf("UnwrapKey(unbound) = %x, %v; want the DEK", got, err)
		}
		if _, err := k.UnwrapKey(ctx, id, keyName, out.CiphertextBlob); !errors.Is(err, keyring.ErrUnwrap) {
			t.Errorf("UnwrapKey(unbound wrap, as bound to %s) = %v, want ErrUnwrap", keyName, err)
		}
	})
	t.Run("ErrOtherKey", func(t *testing.T) {
		other := MustCreateKMSKey(t, client)
		dek := newDEK(t)
		id, wrapped, err := k.WrapKey(ctx, keyName, dek)
		if err != nil {
			t.Fatal(err)
		}
		got, err := k.UnwrapKey(ctx, phivault.KeyID("kms:"+other), keyName, wrapped)
		if !errors.Is(err, keyring.ErrUnwrap) {
			t.Errorf("UnwrapKey under another key = %x, %v, want ErrUnwrap", got, err)
		}
		checkNoKeyInError(t, err, dek)
		// The other key's keyring unwraps under the id WrapKey gave.
		if got, err := keyring.NewKMS(client, other).UnwrapKey(ctx, id, keyName, wrapped); err != nil || !bytes.Equal(got, dek) {
			t.Errorf("UnwrapKey through another keyring = %v, want the DEK", err)
		}
	})
	t.Run("ErrUnknownKEK", func(t *testing.T) {
		_, wrapped, err := k.WrapKey(ctx, keyName, newDEK(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []phivault.KeyID{"", "kms:", "file:1", phivault.KeyID(arn)} {
			if _, err := k.UnwrapKey(ctx, id, keyName, wrapped); !errors.Is(err, keyring.ErrUnknownKEK) {
				t.Errorf("UnwrapKey(%q) = %v, want ErrUnknownKEK", id, err)
			}
		}
	})
	t.Run("ErrMissingKey", func(t *testing.T) {
		_, wrapped, err := k.WrapKey(ctx, keyName, newDEK(t))
		if err != nil {
			t.Fatal(err)
		}
		missing := phivault.KeyID("kms:arn:aws:kms:eu-west-2:111122223333:key/00000000-0000-0000-0000-000000000000")
		if got, err := k.UnwrapKey(ctx, missing, keyName, wrapped); !errors.Is(err, keyring.ErrUnwrap) {
			t.Errorf("UnwrapKey under a missing KMS key = %x, %v, want ErrUnwrap", got, err)
		}
	})
	t.Run("ErrTamperedAnyByte", func(t *testing.T) {
		// Every byte counts, the key id in the blob's header included.
		dek := newDEK(t)
		id, wrapped, err := k.WrapKey(ctx, keyName, dek)
		if err != nil {
			t.Fatal(err)
		}
		for i := range wrapped {
			bad := bytes.Clone(wrapped)
			bad[i] ^= 0x01
			got, err := k.UnwrapKey(ctx, id, keyName, bad)
			if err == nil {
				t.Errorf("UnwrapKey with byte %d of %d flipped = %x, want an error", i, len(wrapped), got)
			}
			checkNoKeyInError(t, err, dek)
		}
	})
	t.Run("ErrKEKDisabled", func(t *testing.T) {
		kk := keyring.NewKMS(client, MustCreateKMSKey(t, client))
		dek := newDEK(t)
		id, wrapped, err := kk.WrapKey(ctx, keyName, dek)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(kk.KeyID())}); err != nil {
			t.Fatalf("DisableKey = %v", err)
		}
		// AWS KMS answers DisabledException (ErrKEKDisabled); local-kms
		// answers AccessDeniedException to a Decrypt without KeyId.
		got, err := kk.UnwrapKey(ctx, id, keyName, wrapped)
		if err == nil || got != nil || errors.Is(err, keyring.ErrKMSUnavailable) {
			t.Errorf("UnwrapKey under a disabled key = %x, %v, want an error other than ErrKMSUnavailable", got, err)
		}
		checkNoKeyInError(t, err, dek)
		if _, _, err := kk.WrapKey(ctx, keyName, dek); !errors.Is(err, keyring.ErrKEKDisabled) {
			t.Errorf("WrapKey under a disabled key = %v, want ErrKEKDisabled", err)
		}
	})
	t.Run("ErrCanceled", func(t *testing.T) {
		id, wrapped, err := k.WrapKey(ctx, keyName, newDEK(t))
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err = k.UnwrapKey(cctx, id, keyName, wrapped)
		if !errors.Is(err, context.Canceled) || errors.Is(err, keyring.ErrKMSUnavailable) {
			t.Errorf("UnwrapKey with a canceled context = %v, want context.Canceled only", err)
		}
	})
}

func TestKMS_Outage(t *testing.T) {
	ctx := context.Background()
	t.Run("Stopped", func(t *testing.T) {
		k, _, srv, _ := MustOpenKMS(t)
		dek := newDEK(t)
		id, wrapped, err := k.WrapKey(ctx, keyName, dek)
		if err != nil {
			t.Fatal(err)
		}
		srv.Stop()
		got, err := k.UnwrapKey(ctx, id, keyName, wrapped)
		if !errors.Is(err, keyring.ErrKMSUnavailable) || got != nil {
			t.Errorf("UnwrapKey with KMS stopped = %x, %v, want ErrKMSUnavailable", got, err)
		}
		if code := phivault.ErrorCode(err); code != phivault.EUNAVAILABLE {
			t.Errorf("ErrorCode(UnwrapKey) = %q, want %q", code, phivault.EUNAVAILABLE)
		}
		checkNoKeyInError(t, err, dek)
		t.Logf("UnwrapKey with KMS stopped: %v", err)
		if _, w, err := k.WrapKey(ctx, keyName, dek); !errors.Is(err, keyring.ErrKMSUnavailable) || w != nil {
			t.Errorf("WrapKey with KMS stopped = %x, %v, want ErrKMSUnavailable", w, err)
		} else {
			checkNoKeyInError(t, err, dek)
		}
	})
	t.Run("Hung", func(t *testing.T) {
		// A service that accepts connections and never answers.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		t.Cleanup(wg.Wait)
		t.Cleanup(func() { ln.Close() })
		wg.Go(func() {
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				conns = append(conns, c)
			}
		})
		client := MustKMSClient(t, "http://"+ln.Addr().String())
		k := keyring.NewKMS(client, "arn:aws:kms:eu-west-2:111122223333:key/00000000-0000-0000-0000-000000000000")
		k.Timeout = 100 * time.Millisecond
		dek := newDEK(t)
		if _, _, err := k.WrapKey(ctx, keyName, dek); !errors.Is(err, keyring.ErrKMSUnavailable) {
			t.Errorf("WrapKey with KMS hung = %v, want ErrKMSUnavailable", err)
		} else {
			checkNoKeyInError(t, err, dek)
		}
	})
}

func TestKMS_LogValue(t *testing.T) {
	srv := keyringtest.StartLocalKMS(t)
	client := MustKMSClient(t, srv.Endpoint)
	arn := MustCreateKMSKey(t, client)
	k := keyring.NewKMS(client, arn)
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("keyring", "keys", k)
	outputs := map[string]string{
		"String":   k.String(),
		"%v":       fmt.Sprintf("%v", k),
		"%+v":      fmt.Sprintf("%+v", k),
		"%#v":      fmt.Sprintf("%#v", k),
		"LogValue": logged.String(),
	}
	for name, s := range outputs {
		if !strings.Contains(s, arn) {
			t.Errorf("%s = %q, want the key ARN", name, s)
		}
		if strings.Contains(s, testKMSSecret) || strings.Contains(s, "AKIDPHIVAULTTEST") {
			t.Errorf("%s = %q, shows credentials", name, s)
		}
	}
}

// runOps runs op b.N times over g goroutines and reports ops/s.
func runOps(b *testing.B, g int, op func() error) {
	b.Helper()
	var (
		wg   sync.WaitGroup
		next = make(chan struct{})
		once sync.Once
	)
	b.ResetTimer()
	go func() {
		for range b.N {
			next <- struct{}{}
		}
		close(next)
	}()
	for range g {
		wg.Go(func() {
			for range next {
				if err := op(); err != nil {
					once.Do(func() { b.Error(err) })
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkKMS(b *testing.B) {
	ctx := context.Background()
	k, _, _, _ := MustOpenKMS(b)
	dek := newDEK(b)
	id, wrapped, err := k.WrapKey(ctx, keyName, dek)
	if err != nil {
		b.Fatal(err)
	}
	for _, g := range []int{1, 8} {
		b.Run(fmt.Sprintf("WrapKey/goroutines=%d", g), func(b *testing.B) {
			runOps(b, g, func() error {
				_, _, err := k.WrapKey(ctx, keyName, dek)
				return err
			})
		})
		b.Run(fmt.Sprintf("UnwrapKey/goroutines=%d", g), func(b *testing.B) {
			runOps(b, g, func() error {
				_, err := k.UnwrapKey(ctx, id, keyName, wrapped)
				return err
			})
		})
	}
}
