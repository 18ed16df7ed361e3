package keyring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/phivault/phivault"
)

// Defaults and limits of the KMS keyring.
const (
	// DefaultKMSTimeout is the longest one KMS call may take before the
	// keyring gives up and reports ErrKMSUnavailable.
	DefaultKMSTimeout = 10 * time.Second
	// KMSKeyIDPrefix starts every phivault.KeyID that a KMS keyring returns:
	// "kms:" followed by the ARN of the KMS key.
	KMSKeyIDPrefix = "kms:"

	// UnboundTag is the tag key that marks a KMS key under which the KMS
	// keyring refuses unbound wraps (see KMS.RefuseUnbound). Its value
	// does not matter: only removing the tag (kms:UntagResource) would
	// accept them again.
	UnboundTag = "phivault-unbound"

	// kmsMaxPlaintext and kmsMaxCiphertext are the limits of the KMS API.
	kmsMaxPlaintext  = 4096
	kmsMaxCiphertext = 6144
)

// ErrKMSUnavailable is returned (wrapped) when the key management service
// cannot be reached or answers that it cannot serve the request now: a
// connection failure, a timeout, throttling or an internal error of the
// service. Retrying later may succeed; nothing about the key is implied.
var ErrKMSUnavailable = &phivault.Error{Code: phivault.EUNAVAILABLE, Message: "The key management service is unavailable."}

// ErrKEKDisabled is returned (wrapped) when the KMS key exists but cannot be
// used: it is disabled or pending deletion.
var ErrKEKDisabled = errors.New("keyring: key-encryption key is disabled or pending deletion")

// kmsContext returns the encryption context of a wrap bound to name:
// {"purpose": "phivault dek v2", "key": name}, or for name "" that of an
// unbound wrap of an earlier version, {"purpose": "phivault dek v1"}. KMS
// binds it to the ciphertext as additional authenticated data and records
// it in its audit trail (CloudTrail), so it holds the purpose and the key's
// name ("patient/<random id>"), never PHI.
func kmsContext(name string) map[string]string {
	if name == "" {
		return map[string]string{"purpose": wrapLabel}
	}
	return map[string]string{"purpose": boundLabel, "key": name}
}

// KMSAPI is the part of the AWS KMS client that the KMS keyring uses.
// *kms.Client implements it.
type KMSAPI interface {
	Encrypt(ctx context.Context, in *kms.EncryptInput, optFns ...func(*kms.Options)) (*kms.EncryptOutput, error)
	Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error)
	ListResourceTags(ctx context.Context, in *kms.ListResourceTagsInput, optFns ...func(*kms.Options)) (*kms.ListResourceTagsOutput, error)
	TagResource(ctx context.Context, in *kms.TagResourceInput, optFns ...func(*kms.Options)) (*kms.TagResourceOutput, error)
}

var _ KMSAPI = (*kms.Client)(nil)

// NewKMSClient returns an AWS KMS client for region that signs its requests
// with creds. endpoint is the base URL of a KMS-compatible service (e.g.
// "http://127.0.0.1:8080"); empty means the AWS endpoint of region. optFns
// adjust the client further, e.g. its retryer.
//
// creds must not be nil; a provider that fetches temporary credentials
// should be cached (the client caches any other provider itself).
func NewKMSClient(endpoint, region string, creds aws.CredentialsProvider, optFns ...func(*kms.Options)) *kms.Client {
	if _, cached := creds.(*aws.CredentialsCache); !cached && creds != nil {
		creds = aws.NewCredentialsCache(creds)
	}
	cfg := aws.Config{Region: region, Credentials: creds}
	return kms.NewFromConfig(cfg, func(o *kms.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		for _, fn := range optFns {
			fn(o)
		}
	})
}

// KMS is a phivault.Keyring whose KEK is a symmetric key held by a key
// management service speaking the AWS KMS API (AWS KMS itself or a
// compatible one). WrapKey is a KMS Encrypt of the DEK and UnwrapKey a KMS
// Decrypt, both with the encryption context {"purpose": "phivault dek v2",
// "key": name}, so the KEK never leaves the service and a wrapped key
// unwraps only under its own name.
//
// The KeyID that WrapKey returns is "kms:" followed by the ARN of the KMS
// key that KMS reports, even when the keyring was given an alias. UnwrapKey
// accepts the id of any KMS key the client's credentials may use (so that
// keys wrapped before a change of key keep unwrapping) and checks that KMS
// unwrapped the key under that very key.
//
// Unbound wraps (name "", made before wraps were bound) unwrap only under a
// KMS key without the tag UnboundTag, which RefuseUnbound sets; UnwrapKey
// reads the key's tags for each of them. So the keyring needs
// kms:ListResourceTags and kms:TagResource on its keys besides kms:Encrypt
// and kms:Decrypt, and should not be given kms:UntagResource.
//
// A KMS never reveals its KEK, and its String, GoString and LogValue show
// the key id only. It is safe for concurrent use by multiple goroutines.
type KMS struct {
	// Timeout bounds each KMS call, retries included; a call that takes
	// longer fails with ErrKMSUnavailable. NewKMS sets DefaultKMSTimeout;
	// zero means no bound other than the caller's context.
	Timeout time.Duration

	client KMSAPI
	keyID  string // as configured: key id, ARN, alias name or alias ARN

	mu      sync.Mutex
	arn     string          // of the key KMS named in the last successful Encrypt
	refused map[string]bool // ARNs known to carry UnboundTag; never removed
}

var _ phivault.Keyring = (*KMS)(nil)

// NewKMS returns a keyring that wraps DEKs under the KMS key keyID (a key
// id, key ARN, alias name such as "alias/phivault" or alias ARN) through
// client. It makes no call: a wrong key id or unreachable service shows up
// at the first WrapKey.
func NewKMS(client KMSAPI, keyID string) *KMS {
	return &KMS{Timeout: DefaultKMSTimeout, client: client, keyID: keyID}
}

// WrapKey encrypts dek under the keyring's KMS key and returns the id of
// that key ("kms:" + its ARN) and the KMS ciphertext blob. It fails with
// ErrKMSUnavailable (wrapped) if KMS cannot be reached.
func (k *KMS) WrapKey(ctx context.Context, name string, dek []byte) (phivault.KeyID, []byte, error) {
	if name == "" {
		return "", nil, errNoName
	}
	if len(dek) == 0 || len(dek) > kmsMaxPlaintext {
		return "", nil, fmt.Errorf("keyring: kms wrap: dek of %d bytes, want 1 to %d", len(dek), kmsMaxPlaintext)
	}
	callCtx, cancel := k.callContext(ctx)
	defer cancel()
	out, err := k.client.Encrypt(callCtx, &kms.EncryptInput{
		KeyId:             aws.String(k.keyID),
		Plaintext:         dek,
		EncryptionContext: kmsContext(name),
	})
	if err != nil {
		return "", nil, kmsError(ctx, "encrypt", k.keyID, err)
	}
	arn := aws.ToString(out.KeyId)
	if arn == "" || len(out.CiphertextBlob) == 0 {
		return "", nil, fmt.Errorf("keyring: kms encrypt under %s: empty response", k.keyID)
	}
	k.mu.Lock()
	k.arn = arn
	k.mu.Unlock()
	return phivault.KeyID(KMSKeyIDPrefix + arn), out.CiphertextBlob, nil
}

// Current returns the id ("kms:" + ARN) of the KMS key that the last
// successful WrapKey used, which is the configured key (an alias resolved
// to its key's ARN), or "" before the first WrapKey. Stored keys whose KEK
// id differs were wrapped under another KMS key, e.g. before a switch of
// keys, and envelope.Rewrap moves them under this one.
func (k *KMS) Current() phivault.KeyID {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.arn == "" {
		return ""
	}
	return phivault.KeyID(KMSKeyIDPrefix + k.arn)
}

// UnwrapKey decrypts wrapped, a ciphertext blob from WrapKey, under the KMS
// key named by id. It returns ErrUnknownKEK if id is not a KMS key id or KMS
// no longer has the key, ErrUnwrap if wrapped was altered or was not wrapped
// under id with the encryption context of name, ErrKEKDisabled if the key
// is disabled (AWS KMS; local-kms reports access denied), and
// ErrKMSUnavailable if KMS cannot be reached (all wrapped); never a wrong
// key.
func (k *KMS) UnwrapKey(ctx context.Context, id phivault.KeyID, name string, wrapped []byte) ([]byte, error) {
	arn, ok := strings.CutPrefix(string(id), KMSKeyIDPrefix)
	if !ok || arn == "" {
		return nil, ErrUnknownKEK
	}
	if len(wrapped) == 0 || len(wrapped) > kmsMaxCiphertext {
		return nil, ErrUnwrap
	}
	if name == "" {
		// Asked each time, so that a key tagged by another node or
		// process is refused here at once.
		refused, err := k.unboundRefused(ctx, arn)
		if err != nil {
			return nil, err
		}
		if refused {
			return nil, unboundRefused(id)
		}
	}
	callCtx, cancel := k.callContext(ctx)
	defer cancel()
	// The request leaves KeyId out on purpose: KMS then takes the key from
	// the blob's own header, so an altered header fails the lookup. Some
	// KMS-compatible services (local-kms) do not authenticate that header
	// and ignore it when KeyId is given, which would let an altered blob
	// unwrap. Checking the KeyId of the answer below keeps the guarantee
	// that KeyId in the request would give: a blob of another key fails.
	out, err := k.client.Decrypt(callCtx, &kms.DecryptInput{
		CiphertextBlob:    wrapped,
		EncryptionContext: kmsContext(name),
	})
	if err != nil {
		return nil, kmsError(ctx, "decrypt", arn, err)
	}
	if aws.ToString(out.KeyId) != arn || len(out.Plaintext) == 0 {
		clear(out.Plaintext)
		return nil, fmt.Errorf("keyring: kms decrypt under %s: %w (wrapped under another key)", arn, ErrUnwrap)
	}
	return out.Plaintext, nil
}

// unboundRefused reports whether the KMS key arn carries UnboundTag.
func (k *KMS) unboundRefused(ctx context.Context, arn string) (bool, error) {
	k.mu.Lock()
	refused := k.refused[arn]
	k.mu.Unlock()
	if refused {
		return true, nil
	}
	in := &kms.ListResourceTagsInput{KeyId: aws.String(arn)}
	for {
		callCtx, cancel := k.callContext(ctx)
		out, err := k.client.ListResourceTags(callCtx, in)
		cancel()
		if err != nil {
			return false, kmsError(ctx, "list tags", arn, err)
		}
		for _, t := range out.Tags {
			if aws.ToString(t.TagKey) == UnboundTag {
				k.markRefused(arn)
				return true, nil
			}
		}
		if !out.Truncated || aws.ToString(out.NextMarker) == "" {
			return false, nil
		}
		in.Marker = out.NextMarker
	}
}

func (k *KMS) markRefused(arn string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.refused == nil {
		k.refused = make(map[string]bool)
	}
	k.refused[arn] = true
}

// AcceptsUnbound returns the keyring's KEK, the configured KMS key ("kms:"
// + its ARN), if it still unwraps unbound wraps (it has no UnboundTag),
// and nothing otherwise. KMS keys the keyring used before are not listed;
// RefuseUnbound refuses them by id. It makes a throwaway WrapKey first if
// none has named the key's ARN yet.
func (k *KMS) AcceptsUnbound(ctx context.Context) ([]phivault.KeyID, error) {
	if k.Current() == "" {
		if _, _, err := k.WrapKey(ctx, "probe", make([]byte, 32)); err != nil {
			return nil, err
		}
	}
	id := k.Current()
	refused, err := k.unboundRefused(ctx, strings.TrimPrefix(string(id), KMSKeyIDPrefix))
	if err != nil || refused {
		return nil, err
	}
	return []phivault.KeyID{id}, nil
}

// RefuseUnbound makes the KMS keys ids ("kms:" + ARN) refuse unbound wraps
// from now on by tagging each with UnboundTag (kms:TagResource), which the
// store's writers cannot undo. Call it once no stored key under them is
// unbound (see envelope.EndUnbound): an unbound key left under them never
// unwraps again. Other ids are ignored.
func (k *KMS) RefuseUnbound(ctx context.Context, ids []phivault.KeyID) error {
	for _, id := range ids {
		arn, ok := strings.CutPrefix(string(id), KMSKeyIDPrefix)
		if !ok || arn == "" {
			continue
		}
		callCtx, cancel := k.callContext(ctx)
		_, err := k.client.TagResource(callCtx, &kms.TagResourceInput{
			KeyId: aws.String(arn),
			Tags:  []types.Tag{{TagKey: aws.String(UnboundTag), TagValue: aws.String("refused")}},
		})
		cancel()
		if err != nil {
			return kmsError(ctx, "tag", arn, err)
		}
		k.markRefused(arn)
	}
	return nil
}

// callContext bounds one KMS call by k.Timeout.
func (k *KMS) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if k.Timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, k.Timeout)
}

// kmsError classifies err, returned by a KMS call on key, as one of the
// keyring's sentinel errors. The SDK error is kept as text only (%v): it
// names the operation, status and request id, never key material.
func kmsError(ctx context.Context, op, key string, err error) error {
	if ctx.Err() != nil {
		// The caller gave up; that says nothing about KMS.
		return fmt.Errorf("keyring: kms %s under %s: %w", op, key, context.Cause(ctx))
	}
	kind := kmsErrorKind(op, err)
	if kind == nil {
		return fmt.Errorf("keyring: kms %s under %s: %v", op, key, err)
	}
	return fmt.Errorf("keyring: kms %s under %s: %w (%v)", op, key, kind, err)
}

// kmsErrorKind returns the sentinel error that err falls under, or nil for
// an error the caller cannot act on (e.g. access denied: a configuration
// error for the operator, shown by the SDK's text).
func kmsErrorKind(op string, err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "InvalidCiphertextException", "IncorrectKeyException":
			return ErrUnwrap
		case "NotFoundException", "InvalidArnException":
			if op == "decrypt" || op == "list tags" {
				return ErrUnknownKEK
			}
			return nil
		case "DisabledException", "KMSInvalidStateException":
			return ErrKEKDisabled
		case "KMSInternalException", "DependencyTimeoutException", "KeyUnavailableException",
			"ThrottlingException", "LimitExceededException", "ServiceUnavailableException":
			return ErrKMSUnavailable
		}
		if apiErr.ErrorFault() == smithy.FaultServer {
			return ErrKMSUnavailable
		}
	}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) && respErr.HTTPStatusCode() >= 500 {
		return ErrKMSUnavailable
	}
	var sendErr *smithyhttp.RequestSendError
	var netErr net.Error
	if errors.As(err, &sendErr) || errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) {
		return ErrKMSUnavailable
	}
	var paramErr smithy.InvalidParamsError
	if errors.As(err, &paramErr) && op == "decrypt" {
		return ErrUnwrap
	}
	return nil
}

// KeyID returns the KMS key the keyring wraps under, as configured (a key
// id, ARN or alias), which may differ from the ARN in WrapKey's KeyID.
func (k *KMS) KeyID() string { return k.keyID }

// String describes the keyring by its key id only.
func (k *KMS) String() string { return fmt.Sprintf("KMS{key: %s}", k.keyID) }

// GoString is String.
func (k *KMS) GoString() string { return k.String() }

// LogValue logs the key id only.
func (k *KMS) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kms_key", k.keyID))
}
