package vault_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/vault"
)

// TestService_BundleFullURL checks that a relative fullUrl is refused (R4
// forbids it, and it would capture other entries' references that mean
// the resource it names), and that response fullUrls are absolute.
func TestService_BundleFullURL(t *testing.T) {
	ctx := context.Background()
	s, _ := MustOpenService(t)
	p := mustCreate(t, s, "Patient", `{"resourceType":"Patient"}`)
	for _, tt := range []struct {
		fullURL string
		code    string
	}{
		{"Patient/" + p.ID, phivault.EINVALID},
		{"x", phivault.EINVALID},
		{"urn:uuid:11111111-1111-4111-8111-111111111111", ""},
		{"https://vault.test/fhir/Observation/new", ""},
	} {
		bundle := fmt.Sprintf(`{"resourceType":"Bundle","type":"transaction","entry":[
		  {"fullUrl":%q,"request":{"method":"POST","url":"Observation"},"resource":{"resourceType":"Observation",
		   "status":"final","code":{"text":"x"},"subject":{"reference":"Patient/%s"}}}]}`, tt.fullURL, p.ID)
		res, err := s.Bundle(ctx, []byte(bundle), "https://vault.test/fhir")
		if code := phivault.ErrorCode(err); code != tt.code {
			t.Errorf("fullUrl %q: error %v, want code %q", tt.fullURL, err, tt.code)
			continue
		}
		if err != nil {
			continue
		}
		var out struct{ Entry []struct{ FullURL string } }
		json.Unmarshal(res.Body, &out)
		if len(out.Entry) != 1 || !strings.HasPrefix(out.Entry[0].FullURL, "https://vault.test/fhir/Observation/") {
			t.Errorf("fullUrl %q: response %s, want an absolute fullUrl", tt.fullURL, res.Body)
		}
	}
}

// TestService_TransactionOverlap checks that a transaction changing one
// resource in two entries is refused and changes nothing.
func TestService_TransactionOverlap(t *testing.T) {
	ctx := context.Background()
	s, _ := MustOpenService(t)
	p := mustCreate(t, s, "Patient", `{"resourceType":"Patient"}`)
	bundle := fmt.Sprintf(`{"resourceType":"Bundle","type":"transaction","entry":[
	  {"request":{"method":"DELETE","url":"Patient/%[1]s"}},
	  {"request":{"method":"PUT","url":"Patient/%[1]s"},"resource":{"resourceType":"Patient","id":%[1]q,"active":true}}]}`, p.ID)
	_, err := s.Bundle(ctx, []byte(bundle), "")
	if code := phivault.ErrorCode(err); code != phivault.EINVALID {
		t.Fatalf("overlapping transaction: error %v, want EINVALID", err)
	}
	if got, err := s.Read(ctx, "Patient", p.ID); err != nil || got.Version != 1 {
		t.Fatalf("Patient after the refused transaction = %v, %v; want version 1", got, err)
	}
}

// allowAll is a WriteGuard that lets everything through.
type allowAll struct{}

func (allowAll) AuthorizeWrites(context.Context, []phivault.Write) error { return nil }
func (allowAll) Hide(context.Context, *phivault.Resource) error          { return nil }
func (allowAll) Bound(context.Context, string) ([]string, error)         { return nil, nil }

// TestService_ConditionalMatchCap checks that conditional matching, which
// runs inside the write transaction, decides at most MaxCount candidates
// and otherwise asks to narrow the query.
func TestService_ConditionalMatchCap(t *testing.T) {
	ctx := context.Background()
	s, _ := MustOpenService(t)
	p := mustCreate(t, s, "Patient", `{"resourceType":"Patient"}`)
	entry := fmt.Sprintf(`{"request":{"method":"POST","url":"Observation"},"resource":{"resourceType":"Observation",
	  "status":"final","code":{"coding":[{"system":"urn:x","code":"c"}]},"subject":{"reference":"Patient/%s"}}}`, p.ID)
	entries := strings.Repeat(entry+",", vault.MaxCount) + entry
	if _, err := s.Bundle(ctx, []byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+entries+`]}`), ""); err != nil {
		t.Fatal(err)
	}
	gctx := phivault.WithWriteGuard(ctx, allowAll{})
	_, _, err := s.Create(gctx, "Observation", []byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"}}`),
		phivault.CreateOptions{IfNoneExist: "code=urn:x|c"})
	if code := phivault.ErrorCode(err); code != phivault.EPRECONDITION || !strings.Contains(phivault.ErrorMessage(err), "narrow") {
		t.Fatalf("conditional create over %d matches: %v, want EPRECONDITION asking to narrow", vault.MaxCount+1, err)
	}
}
